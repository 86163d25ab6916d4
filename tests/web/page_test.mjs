// Drives maas-serve's web page in headless Chromium: the model card, an upload's preview, top-5
// bars and explanation heatmap, and a click on another class that changes the heatmap.
// usage: node page_test.mjs URL IMAGE EXPECTED_TOP_CLASS CARD_JSON
//   CARD_JSON: a file {"field": "text the card's field must contain", ...} (data-field names)
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [url, image, expected, cardFile] = process.argv.slice(2);
const card = JSON.parse(readFileSync(cardFile, 'utf8'));
const failures = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});

// The heatmap canvas: its target and a summary of its pixels.
const heatmap = (page) => page.$eval('#heatmap', (canvas) => {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let visible = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) visible++;
  return { target: canvas.dataset.target, width: canvas.width, visible, pixels: Array.from(data) };
});

try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => failures.push('page error: ' + e.message));
  await page.goto(url);
  await page.waitForSelector('#model option', { state: 'attached', timeout: 20000 });
  await page.waitForSelector('#version option', { state: 'attached', timeout: 20000 });
  await page.waitForFunction(() => {  // the card is filled in ('…' while it loads)
    const text = document.querySelector('#card [data-field="architecture"]').textContent;
    return text !== '' && !text.includes('…');
  }, null, { timeout: 20000 });
  for (const [name, text] of Object.entries(card)) {
    const shown = await page.$eval(`#card [data-field="${name}"]`, (e) => e.textContent);
    if (!shown.includes(text)) failures.push(`card field ${name} shows '${shown}', expected it to contain '${text}'`);
  }

  await page.setInputFiles('#file', image);
  await page.waitForSelector('#results .row', { timeout: 20000 });
  const preview = await page.$eval('#preview', (img) => ({ width: img.naturalWidth, shown: img.getBoundingClientRect().width }));
  if (!(preview.width > 0 && preview.shown >= 200)) failures.push(`preview not shown enlarged: ${JSON.stringify(preview)}`);
  const labels = await page.$$eval('#results .row .label', (rows) => rows.map((e) => e.textContent));
  if (labels[0] !== expected || labels.length !== 5)
    failures.push(`page shows top class '${labels[0]}' in ${labels.length} rows; expected '${expected}' in 5`);

  // The heatmap of the top class, then of the second class after a click on its bar.
  await page.waitForSelector(`#heatmap[data-target="${labels[0]}"]`, { timeout: 20000 });
  const first = await heatmap(page);
  if (first.width !== 32 || first.visible === 0) failures.push(`heatmap of ${labels[0]} is blank or not 32 wide (${first.width}, ${first.visible} visible pixels)`);
  await page.click(`#results .row[data-label="${labels[1]}"]`);
  await page.waitForSelector(`#heatmap[data-target="${labels[1]}"]`, { timeout: 20000 });
  const second = await heatmap(page);
  if (second.visible === 0) failures.push(`heatmap of ${labels[1]} is blank`);
  if (first.pixels.every((v, i) => v === second.pixels[i])) failures.push('clicking another class did not change the heatmap');
  const selected = await page.$eval('#results .row.selected .label', (e) => e.textContent);
  if (selected !== labels[1]) failures.push(`selected bar is '${selected}', expected '${labels[1]}'`);
  const status = await page.$eval('#explain-status', (e) => e.textContent);
  if (!status.includes('completeness error')) failures.push(`explanation status says '${status}'`);
} finally {
  await browser.close();
}
if (failures.length) {
  for (const f of failures) console.error(f);
  process.exit(1);
}
console.log(`web page ok: card, top class ${expected}, heatmaps`);
