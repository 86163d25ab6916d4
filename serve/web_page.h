// The page served at GET /: pick a model and version, read its model card, drop an image, see the
// top-5 classes and the explanation heatmap of any of them. One self-contained page, no external assets.
#pragma once

namespace maas {

inline constexpr const char* kWebPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>maas-serve</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  h2 { font-size: 1.1rem; margin: 0 0 .5rem; }
  .pickers { display: flex; gap: 1rem; margin-bottom: 1rem; }
  #card { border: 1px solid #ccc; border-radius: 8px; padding: .8rem 1rem; }
  #card dl { display: grid; grid-template-columns: 10rem 1fr; gap: .2rem 1rem; margin: 0; }
  #card dt { color: #666; }
  #card dd { margin: 0; overflow-wrap: anywhere; }
  #card pre { max-height: 16rem; overflow: auto; background: #f6f6f6; padding: .5rem; font-size: .8rem; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 1.5rem; text-align: center; margin: 1rem 0; cursor: pointer; }
  #drop.over { background: #eef4ff; border-color: #36c; }
  .analysis { display: grid; grid-template-columns: 16rem 1fr; gap: 1.5rem; align-items: start; }
  #stage { position: relative; width: 16rem; display: none; }
  #preview { display: block; width: 100%; height: 100%; object-fit: fill; image-rendering: pixelated; }
  #heatmap { position: absolute; inset: 0; width: 100%; height: 100%; }
  .row { display: grid; grid-template-columns: 7rem 1fr 4rem; gap: .5rem; align-items: center; margin: .2rem 0;
         padding: .2rem .3rem; border: 1px solid transparent; border-radius: 4px; cursor: pointer; background: none;
         font: inherit; text-align: left; width: 100%; }
  .row:hover { border-color: #ccc; }
  .row.selected { border-color: #c60; background: #fff6ee; }
  .bar { background: #36c; height: 1rem; border-radius: 3px; }
  .note { color: #666; font-size: .9rem; }
  .error { color: #b00; }
</style>
</head>
<body>
<h1>maas-serve</h1>
<div class="pickers">
  <label>Model <select id="model"></select></label>
  <label>Version <select id="version"></select></label>
</div>
<section id="card" aria-label="model card">
  <h2>Model card</h2>
  <dl>
    <dt>Architecture</dt><dd data-field="architecture"></dd>
    <dt>Parameters</dt><dd data-field="parameters"></dd>
    <dt>MACs per image</dt><dd data-field="macs"></dd>
    <dt>Test accuracy</dt><dd data-field="accuracy"></dd>
    <dt>Classes</dt><dd data-field="classes"></dd>
    <dt>Input</dt><dd data-field="input"></dd>
    <dt>Created</dt><dd data-field="created"></dd>
    <dt>Artifact</dt><dd data-field="format"></dd>
    <dt>Weights</dt><dd data-field="weights"></dd>
    <dt>Training config</dt><dd data-field="training"></dd>
  </dl>
</section>
<div id="drop">Drop an image here or <label style="text-decoration:underline">choose one
  <input id="file" type="file" accept="image/*" hidden></label></div>
<div class="analysis">
  <div>
    <div id="stage"><img id="preview" alt="uploaded image, as resized for the model"><canvas id="heatmap" aria-label="explanation heatmap"></canvas></div>
    <p id="explain-status" class="note" aria-live="polite"></p>
  </div>
  <div>
    <div id="results" aria-live="polite"></div>
    <p class="note" id="hint" hidden>Click a class to see why the model would say it (integrated gradients).</p>
  </div>
</div>
<script>
const $ = (id) => document.getElementById(id);
const select = $('model'), versionSelect = $('version'), results = $('results'), preview = $('preview');
const stage = $('stage'), heatmap = $('heatmap'), explainStatus = $('explain-status'), drop = $('drop');
const versions = new Map();  // model name -> its versions, newest first
let classes = [], image = null, explainSeq = 0;

function message(element, text, isError) {
  element.textContent = text;
  element.className = isError ? 'error' : 'note';
}
function path() { return encodeURIComponent(select.value) + '/' + encodeURIComponent(versionSelect.value); }
function field(name, text) { document.querySelector('#card [data-field="' + name + '"]').textContent = text; }
function orDash(v) { return v === undefined || v === null || v === '' ? '—' : String(v); }
function percent(p) { return typeof p === 'number' ? (100 * p).toFixed(2) + '%' : null; }

async function loadModels() {
  try {
    const body = await (await fetch('/models')).json();
    for (const m of body.models) {
      if (!versions.has(m.name)) versions.set(m.name, []);
      versions.get(m.name).push(m.version);
    }
    for (const [name, list] of versions) {
      list.sort((a, b) => Number(b) - Number(a));
      const o = document.createElement('option'); o.value = o.textContent = name; select.appendChild(o);
    }
    if (!versions.size) { message(results, 'No models are loaded.', true); return; }
    fillVersions();
  } catch (e) { message(results, 'Cannot list models: ' + e, true); }
}

function fillVersions() {
  versionSelect.innerHTML = '';
  for (const v of versions.get(select.value) || []) {
    const o = document.createElement('option'); o.value = o.textContent = v; versionSelect.appendChild(o);
  }
  loadCard();
}

async function loadCard() {
  document.querySelectorAll('#card dd').forEach((dd) => { dd.textContent = '…'; });
  try {
    const r = await fetch('/v2/models/' + encodeURIComponent(select.value) + '/versions/' + encodeURIComponent(versionSelect.value));
    const meta = await r.json();
    if (!r.ok) throw new Error(meta.error || 'HTTP ' + r.status);
    const p = meta.parameters || {}, md = p.metadata || {}, model = md.model || {}, training = md.training || {};
    classes = p.classes || [];
    const shape = meta.inputs[0].shape;
    stage.style.aspectRatio = shape[3] + ' / ' + shape[2];
    field('architecture', orDash(model.name) + (Array.isArray(model.widths) ? ' (widths ' + model.widths.join(', ') + ')' : ''));
    field('parameters', typeof model.parameters === 'number' ? model.parameters.toLocaleString('en-US') : '—');
    field('macs', typeof model.macs_per_image === 'number' ? (model.macs_per_image / 1e6).toFixed(1) + ' M' : '—');
    const best = percent(training.best_test_acc), final = percent(training.final_test_acc);
    const verified = percent((md.verification || {}).artifact_test_acc);
    field('accuracy', best ? 'best ' + best + (final ? ', final ' + final : '') + (verified ? '; artifact ' + verified : '') : '—');
    field('classes', classes.length + ': ' + classes.join(', '));
    field('input', shape.slice(1).join(' × ') + ' pixels 0..255' + (md.dataset ? ', ' + md.dataset : ''));
    field('created', orDash(md.created));
    field('format', 'format ' + orDash(md.format_version) + (md.maas_version ? ', maas ' + md.maas_version : '') +
          (model.frozen ? ', frozen' : '') + ', TTA ' + orDash(p.tta));
    field('weights', orDash(model.weights));
    const config = document.querySelector('#card [data-field="training"]');
    config.textContent = '';
    if (training.config) {
      const details = document.createElement('details'), summary = document.createElement('summary'), pre = document.createElement('pre');
      summary.textContent = (training.epoch !== undefined ? 'epoch ' + training.epoch + ', ' : '') + (training.checkpoint || 'config');
      pre.textContent = JSON.stringify(training.config, null, 2);
      details.append(summary, pre); config.appendChild(details);
    } else config.textContent = '—';
  } catch (e) { field('architecture', 'cannot read the model card: ' + e); }
}

async function classify(file) {
  if (!select.value) { message(results, 'Pick a model first.', true); return; }
  image = file;
  preview.src = URL.createObjectURL(file); stage.style.display = 'block';
  heatmap.getContext('2d').clearRect(0, 0, heatmap.width, heatmap.height); delete heatmap.dataset.target;
  message(results, 'Classifying…'); message(explainStatus, '');
  try {
    const r = await fetch('/predictions/' + path() + '?topk=5', { method: 'POST', body: file });
    const body = await r.json();
    if (!r.ok) { message(results, body.error || ('HTTP ' + r.status), true); return; }
    results.innerHTML = ''; results.className = '';
    for (const [label, p] of Object.entries(body)) {
      const row = document.createElement('button'); row.className = 'row'; row.type = 'button'; row.dataset.label = label;
      const name = document.createElement('span'); name.className = 'label'; name.textContent = label;
      const bar = document.createElement('div'); bar.className = 'bar'; bar.style.width = (100 * p).toFixed(1) + '%';
      const value = document.createElement('span'); value.textContent = (100 * p).toFixed(1) + '%';
      row.append(name, bar, value); results.appendChild(row);
      row.addEventListener('click', () => explain(label));
    }
    $('hint').hidden = false;
    results.dataset.top = Object.keys(body)[0] || '';
    if (results.dataset.top) explain(results.dataset.top);
  } catch (e) { message(results, 'Request failed: ' + e, true); }
}

async function explain(label) {
  const seq = ++explainSeq, file = image;
  const index = classes.indexOf(label);
  message(explainStatus, 'Explaining ' + label + '…');
  try {
    const target = encodeURIComponent(index >= 0 ? String(index) : label);
    const r = await fetch('/explanations/' + path() + '?target=' + target, { method: 'POST', body: file });
    const body = await r.json();
    if (seq !== explainSeq) return;  // a newer request replaced this one
    if (!r.ok) { message(explainStatus, body.error || ('HTTP ' + r.status), true); return; }
    draw(body.attribution);
    heatmap.dataset.target = body.label;
    for (const row of results.querySelectorAll('.row')) row.classList.toggle('selected', row.dataset.label === body.label);
    const c = body.completeness;
    message(explainStatus, 'Why ' + body.label + ' (p = ' + body.probability.toFixed(3) + '): integrated gradients, ' +
            body.parameters.steps + ' steps from a black image' +
            (c && c.relative_error !== null ? '; completeness error ' + (100 * c.relative_error).toFixed(1) + '%' : ''));
  } catch (e) { if (seq === explainSeq) message(explainStatus, 'Explanation failed: ' + e, true); }
}

// |attribution| summed over channels, the 99th percentile (or the maximum) at full strength, "hot" colours whose
// opacity grows with strength (as the server's format=png heatmap).
function draw(attribution) {
  const h = attribution[0].length, w = attribution[0][0].length, heat = new Float32Array(h * w);
  for (const channel of attribution)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) heat[y * w + x] += Math.abs(channel[y][x]);
  const sorted = Array.from(heat).sort((a, b) => a - b);
  const top = sorted[Math.floor(0.99 * (sorted.length - 1))] || sorted[sorted.length - 1] || 1;
  heatmap.width = w; heatmap.height = h;
  const context = heatmap.getContext('2d'), pixels = context.createImageData(w, h);
  const clamp = (v) => Math.max(0, Math.min(1, v));
  heat.forEach((value, i) => {
    const v = clamp(value / top);
    pixels.data.set([255 * clamp(3 * v), 255 * clamp(3 * v - 1), 255 * clamp(3 * v - 2), 255 * 0.8 * v], 4 * i);
  });
  context.putImageData(pixels, 0, 0);
}

select.addEventListener('change', fillVersions);
versionSelect.addEventListener('change', loadCard);
$('file').addEventListener('change', (e) => { if (e.target.files[0]) classify(e.target.files[0]); });
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]); });
loadModels();
</script>
</body>
</html>
)HTML";

}  // namespace maas
