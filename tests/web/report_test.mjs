// Opens maas-train reports from disk in headless Chromium and checks their charts, tables and console.
// usage: node report_test.mjs SPEC.json
// SPEC: {"pages": [{"file": PATH, "charts": {SVG_ID: [POINTS_PER_SERIES...]}, "classes": [NAME...]?, "runs": N?}]}
// A page with "classes" is a run report (confusion matrix, per-class table, config, model summary);
// one with "runs" is a comparison (one table row per run). Exits 1 listing every problem found.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  for (const expected of spec.pages) {
    const url = pathToFileURL(expected.file).href;
    const fail = (what) => problems.push(`${expected.file}: ${what}`);
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') fail(`console error: ${m.text()}`); });
    page.on('pageerror', (e) => fail(`page error: ${e.message}`));
    page.on('request', (r) => { if (r.url() !== url) fail(`loads ${r.url()} (a report must be self-contained)`); });
    page.on('requestfailed', (r) => fail(`request failed: ${r.url()}`));
    await page.goto(url, { waitUntil: 'load' });

    const found = await page.evaluate((ids) => {
      const charts = {};
      for (const id of ids) {
        const svg = document.querySelector(`svg.chart#${id}`);
        if (!svg) continue;
        const box = svg.getBoundingClientRect();
        charts[id] = {
          width: box.width,
          height: box.height,
          series: [...svg.querySelectorAll('polyline.series')].map((p) => p.points.numberOfItems),
          ticks: svg.querySelectorAll('text.tick').length,
          legend: svg.querySelectorAll('.legend-entry').length,
          title: svg.querySelector('text.chart-title')?.textContent ?? '',
        };
      }
      const rows = (selector) => document.querySelectorAll(selector).length;
      return {
        charts,
        chartCount: rows('svg.chart'),
        scripts: rows('script'),
        charset: document.characterSet,
        confusionCells: rows('table.confusion tbody td'),
        confusionColumns: [...document.querySelectorAll('table.confusion thead th[scope=col]')].map((t) => t.textContent),
        perClassRows: rows('table.per-class tbody tr'),
        config: document.querySelector('pre#config')?.textContent ?? null,
        modelSummary: document.querySelector('pre#model-summary')?.textContent ?? null,
        runRows: rows('table.runs tbody tr'),
      };
    }, Object.keys(expected.charts));

    if (found.charset !== 'UTF-8') fail(`character set ${found.charset}, not UTF-8`);
    if (found.scripts !== 0) fail(`${found.scripts} <script> elements (escaping failed?)`);
    if (found.chartCount !== Object.keys(expected.charts).length)
      fail(`${found.chartCount} charts, expected ${Object.keys(expected.charts).length}`);
    for (const [id, points] of Object.entries(expected.charts)) {
      const chart = found.charts[id];
      if (!chart) { fail(`no chart #${id}`); continue; }
      if (!(chart.width > 100 && chart.height > 100)) fail(`chart #${id} is drawn ${chart.width}x${chart.height}`);
      if (JSON.stringify(chart.series) !== JSON.stringify(points))
        fail(`chart #${id} has series with ${JSON.stringify(chart.series)} points, expected ${JSON.stringify(points)}`);
      if (chart.ticks < 4) fail(`chart #${id} has ${chart.ticks} tick labels`);
      if (chart.legend < 1) fail(`chart #${id} has no legend`);
      if (!chart.title) fail(`chart #${id} has no title`);
    }
    if (expected.classes) {
      const n = expected.classes.length;
      if (found.confusionCells !== n * n) fail(`confusion matrix has ${found.confusionCells} cells, expected ${n * n}`);
      if (JSON.stringify(found.confusionColumns) !== JSON.stringify(expected.classes))
        fail(`confusion columns ${JSON.stringify(found.confusionColumns)}, expected ${JSON.stringify(expected.classes)}`);
      if (found.perClassRows !== n) fail(`per-class table has ${found.perClassRows} rows, expected ${n}`);
      if (!found.config) fail('no config in <pre id="config">');
      if (!found.modelSummary) fail('no model summary in <pre id="model-summary">');
    }
    if (expected.runs !== undefined && found.runRows !== expected.runs)
      fail(`runs table has ${found.runRows} rows, expected ${expected.runs}`);
    await page.close();
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`report pages ok: ${spec.pages.length} checked in Chromium`);
