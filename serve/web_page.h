// The page served at GET /: pick a model, drop an image, see the top-5 classes. No external assets.
#pragma once

namespace maas {

inline constexpr const char* kWebPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>maas-serve</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center; margin: 1rem 0; cursor: pointer; }
  #drop.over { background: #eef4ff; border-color: #36c; }
  #preview { width: 8rem; image-rendering: pixelated; display: none; margin: 0 auto 1rem; }
  .row { display: grid; grid-template-columns: 8rem 1fr 4rem; gap: .5rem; align-items: center; margin: .3rem 0; }
  .bar { background: #36c; height: 1rem; border-radius: 3px; }
  .error { color: #b00; }
</style>
</head>
<body>
<h1>maas-serve</h1>
<label>Model <select id="model"></select></label>
<div id="drop">Drop an image here or <label style="text-decoration:underline">choose one
  <input id="file" type="file" accept="image/*" hidden></label></div>
<img id="preview" alt="uploaded image">
<div id="results" aria-live="polite"></div>
<script>
const select = document.getElementById('model');
const results = document.getElementById('results');
const preview = document.getElementById('preview');
const drop = document.getElementById('drop');

function show(error) { results.innerHTML = ''; const p = document.createElement('p'); p.className = 'error'; p.textContent = error; results.appendChild(p); }

async function loadModels() {
  try {
    const r = await fetch('/models');
    const body = await r.json();
    const names = [...new Set(body.models.map(m => m.name))];
    for (const name of names) { const o = document.createElement('option'); o.value = o.textContent = name; select.appendChild(o); }
    if (!names.length) show('No models are loaded.');
  } catch (e) { show('Cannot list models: ' + e); }
}

async function classify(file) {
  if (!select.value) { show('Pick a model first.'); return; }
  preview.src = URL.createObjectURL(file); preview.style.display = 'block';
  results.textContent = 'Classifying…';
  try {
    const r = await fetch('/predictions/' + encodeURIComponent(select.value) + '?topk=5', { method: 'POST', body: file });
    const body = await r.json();
    if (!r.ok) { show(body.error || ('HTTP ' + r.status)); return; }
    results.innerHTML = '';
    for (const [label, p] of Object.entries(body)) {
      const row = document.createElement('div'); row.className = 'row';
      const name = document.createElement('span'); name.className = 'label'; name.textContent = label;
      const bar = document.createElement('div'); bar.className = 'bar'; bar.style.width = (100 * p).toFixed(1) + '%';
      const value = document.createElement('span'); value.textContent = (100 * p).toFixed(1) + '%';
      row.append(name, bar, value); results.appendChild(row);
    }
    results.dataset.top = Object.keys(body)[0] || '';
  } catch (e) { show('Request failed: ' + e); }
}

document.getElementById('file').addEventListener('change', e => { if (e.target.files[0]) classify(e.target.files[0]); });
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]); });
loadModels();
</script>
</body>
</html>
)HTML";

}  // namespace maas
