// Uploads an image through maas-serve's web page in headless Chromium and checks the top class shown.
// usage: node page_test.mjs URL IMAGE EXPECTED_TOP_CLASS
import { chromium } from 'playwright-core';

const [url, image, expected] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector('#model option', { state: 'attached', timeout: 20000 });
  await page.setInputFiles('#file', image);
  await page.waitForSelector('#results .row', { timeout: 20000 });
  const top = await page.$eval('#results .row .label', (e) => e.textContent);
  const rows = await page.$$eval('#results .row', (r) => r.length);
  if (top !== expected || rows !== 5) {
    console.error(`page shows top class '${top}' in ${rows} rows; expected '${expected}' in 5`);
    process.exit(1);
  }
  console.log(`web page ok: top class ${top}`);
} finally {
  await browser.close();
}
