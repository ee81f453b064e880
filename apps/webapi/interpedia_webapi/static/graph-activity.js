// What is being made for the graph page's model, followed live: transcoder sets in training
// (tokens, per-layer metrics, layers with dashboards) and graph jobs (queued, running,
// failed, stored), e.g. what `make demo` builds after the page is up. Polls the API, fast
// while something is under way and slowly otherwise, so work queued later shows up too.

const BUSY_MS = 1500;
const IDLE_MS = 10000;
const ACTIVE_JOBS = new Set(["todo", "doing", "aborting"]);
const JOB_WORDS = { todo: "queued", doing: "running", aborting: "cancelling" };

const escape = text => Interpedia.escape(String(text));
const number = (value, digits) => (value == null ? "–" : value.toFixed(digits));
const percent = value => (value == null ? "–" : `${(100 * value).toFixed(1)}%`);
const bar = share => `<div class="progress"><div style="width:${(100 * share).toFixed(1)}%"></div></div>`;

function trainingPanel(t, open) {
  const summary = t.status === "succeeded"
    ? `Trained; dashboards of ${t.layersWithDashboards} of ${t.layerCount} layers done (the worker computes the rest).`
    : `Training (${t.status}): ${t.nTokens.toLocaleString("en")} of ${t.totalTokens.toLocaleString("en")} tokens · FVU ${number(t.fvu, 3)} · L0 ${number(t.l0, 1)} · dead ${percent(t.deadFraction)}`;
  const share = t.status === "succeeded" ? t.layersWithDashboards / Math.max(t.layerCount, 1)
    : t.nTokens / Math.max(t.totalTokens, 1);
  const rows = t.layers.map(m => `<tr><td>${m.layer}</td><td class="num">${number(m.fvu, 3)}</td><td class="num">${number(m.l0, 1)}</td><td class="num">${percent(m.deadFraction)}</td></tr>`);
  const table = rows.length ? `<details ${open ? "open" : ""}><summary>Per layer</summary><table><thead><tr><th>Layer</th><th class="num">FVU</th><th class="num">L0</th><th class="num">Dead</th></tr></thead><tbody>${rows.join("")}</tbody></table></details>` : "";
  return `<div class="panel transcoder-training" data-set="${escape(t.name)}"><h2>Transcoders ${escape(t.name)}</h2><p class="muted training-status">${escape(summary)}</p>${bar(share)}${table}</div>`;
}

function jobRow(job) {
  const name = `<b>${escape(job.slug)}</b>`;
  if (job.url) return `<div class="graph-job" data-status="${job.status}">${name} stored · <a href="${escape(job.url)}">open the graph</a></div>`;
  if (job.status === "failed") {
    const why = (job.message || "").replace(/^failed: /, "") || "see the graph worker's log";
    return `<div class="graph-job error" data-status="failed">${name} failed: ${escape(why)}</div>`;
  }
  const share = job.total ? (job.done || 0) / job.total : 0;
  const done = job.total ? ` ${Math.round(100 * share)}% (${job.done}/${job.total})` : "";
  const note = job.message ? ` · ${escape(job.message)}` : "";
  return `<div class="graph-job" data-status="${job.status}">${name} ${JOB_WORDS[job.status] || job.status}${done}${note}${ACTIVE_JOBS.has(job.status) ? bar(share) : ""}</div>`;
}

/** Follow the model's trainings into `trainings` and its graph jobs into `jobs` (whose
 * panel shows only while there are some); `onRegistered(set)` once a trained set is
 * registered, `onStored(slug)` once a followed job's graph is stored. */
export function followActivity(modelId, { trainings, jobs, onRegistered, onStored }) {
  const seen = new Map();  // job id -> status, to tell when one becomes stored
  const registered = new Set();
  async function tick() {
    const query = `?modelId=${encodeURIComponent(modelId)}`;
    const [sets, graphJobs] = await Promise.all([
      Interpedia.api(`/graph/transcoder-trainings${query}`).catch(() => []),
      Interpedia.api(`/graph/jobs${query}`).catch(() => []),
    ]);
    const open = new Set([...trainings.querySelectorAll("details[open]")].map(d => d.closest("[data-set]").dataset.set));
    trainings.innerHTML = sets.map(t => trainingPanel(t, open.has(t.name))).join("");
    jobs.querySelector(".graph-jobs").innerHTML = graphJobs.map(jobRow).join("");
    jobs.hidden = !graphJobs.length;
    for (const t of sets.filter(t => t.layerCount && !registered.has(t.name))) {
      registered.add(t.name);
      onRegistered(t.name);
    }
    for (const job of graphJobs) {
      if (job.url && seen.has(job.jobId) && seen.get(job.jobId) !== job.status) onStored(job.slug);
      seen.set(job.jobId, job.status);
    }
    const busy = graphJobs.some(j => ACTIVE_JOBS.has(j.status)) || sets.length > 0;
    setTimeout(tick, busy ? BUSY_MS : IDLE_MS);
  }
  tick();
}
