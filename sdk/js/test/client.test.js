// The client against the real `moment` server (`moment serve --demo`, port 0).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";

import { createClient, memoryStorage } from "../dist/moment.js";
import { startServer, api, eventually } from "./server.js";

const servers = [];
async function server() {
  const started = await startServer();
  servers.push(started);
  return started;
}
after(() => servers.forEach((s) => s.stop()));

const home = { point: "web-hero", context: { section: "home" }, limit: 1 };

/** A client on `server` that keeps what it persists in memory (Node has no localStorage). */
function client(server, options = {}) {
  const errors = [];
  const made = createClient({
    baseUrl: server.base,
    key: server.keys.decide,
    channel: "web",
    storage: memoryStorage(),
    onError: (e) => errors.push(e),
    ...options,
  });
  made.errors = errors;
  return made;
}

test("decides over the network, for an anonymous customer kept in storage", async () => {
  const s = await server();
  const moment = client(s);
  const decision = await moment.decide(home);
  assert.equal(decision.source, "network");
  assert.equal(decision.fallback, false);
  assert.match(decision.decision_id, /\S/);
  assert.deepEqual(decision.actions.map((a) => a.id), ["spring-sale"]);
  assert.equal(decision.actions[0].payload.cta, "See the sale");
  assert.match(decision.customer_id, /^anon-[0-9a-f]{32}$/);
  assert.equal(moment.customerId(), decision.customer_id, "the anonymous id is kept");
  moment.identify("c-42");
  assert.equal((await moment.decide(home)).customer_id, "c-42");
  moment.identify(null);
  assert.equal(moment.customerId(), decision.customer_id, "signing out goes back to the anonymous id");
  assert.deepEqual(moment.errors, []);
  moment.close();
});

test("answers with the caller's fallback within the timeout when the server never answers", async (t) => {
  // A socket that accepts connections and never says a word.
  const sockets = [];
  const silent = createServer((socket) => sockets.push(socket));
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    sockets.forEach((socket) => socket.destroy());
    silent.close();
  });
  const moment = client(
    { base: `http://127.0.0.1:${silent.address().port}`, keys: { decide: "pk" } },
    { timeoutMs: 300 },
  );
  const fallback = [{ id: "newsletter", payload: { headline: "Hear about offers first" } }];
  const started = performance.now();
  const decision = await moment.decide(home, fallback);
  const elapsed = performance.now() - started;
  t.diagnostic(`fallback after ${elapsed.toFixed(1)} ms with a 300 ms timeout`);
  assert.equal(decision.source, "fallback");
  assert.equal(decision.decision_id, null);
  assert.deepEqual(decision.actions, [
    { id: "newsletter", kind: "message", score: 0, payload: { headline: "Hear about offers first" } },
  ]);
  assert.equal(decision.error.kind, "timeout");
  assert.ok(elapsed >= 299, `answered before the timeout: ${elapsed} ms`);
  assert.ok(elapsed < 300 + 100, `answered ${elapsed - 300} ms after the timeout`);
  moment.close();
});

test("answers from the cache once the server has stopped, then from the fallback when it is stale", async () => {
  const s = await server();
  const storage = memoryStorage();
  const moment = client(s, { storage, fallbacks: { "web-hero": [{ id: "newsletter" }] } });
  const live = await moment.decide(home);
  assert.equal(live.source, "network");
  s.stop();
  const cached = await moment.decide(home);
  assert.equal(cached.source, "cache");
  assert.equal(cached.error.kind, "network");
  assert.equal(cached.decision_id, live.decision_id, "outcomes still go to the decision that ranked it");
  assert.deepEqual(cached.actions, live.actions);
  // Another customer has nothing cached: the client's fallbacks.
  const other = await moment.decide({ ...home, customer_id: "c-other" });
  assert.equal(other.source, "fallback");
  assert.deepEqual(other.actions.map((a) => a.id), ["newsletter"]);
  // A reload keeps the cache; past its freshness it no longer stands in.
  const reloaded = client(s, { storage, cacheTtlMs: 0, fallbacks: { "web-hero": [{ id: "newsletter" }] } });
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal((await reloaded.decide(home)).source, "fallback");
  moment.close();
  reloaded.close();
});

/** Decides for `n` customers; returns the decisions. */
async function decisions(moment, n, prefix) {
  const made = [];
  for (let i = 0; i < n; i++) {
    made.push(await moment.decide({ ...home, customer_id: `${prefix}-${i}` }));
  }
  return made;
}

test("25 outcomes arrive as 2 requests and count once, through duplicates and retries", async () => {
  const s = await server();
  // Two versions of the hero and an experiment between them, goal "convert".
  const version = await api(s, "GET", "/v1/policies/web-hero/versions/1", s.keys.editor);
  await api(s, "POST", "/v1/policies/web-hero/versions", s.keys.editor, {
    engine: "rhai", source: version.source, catalog: version.catalog, fallback: version.fallback,
  });
  await api(s, "POST", "/v1/experiments", s.keys.editor, {
    id: "hero-test", point: "web-hero", goal: "convert",
    variants: [{ id: "control", version: 1, weight: 0.5 }, { id: "treatment", version: 2, weight: 0.5 }],
  });

  // Every outcome request reaches the server; the answer to the first one is
  // lost on the way back (a 503 with Retry-After: 1), so the client retries a
  // batch the server already stored.
  const requests = [];
  const flaky = async (url, init) => {
    if (!String(url).endsWith("/v1/outcomes")) return fetch(url, init);
    requests.push({ at: performance.now(), events: JSON.parse(init.body).events });
    const response = await fetch(url, init);
    if (requests.length > 1) return response;
    return new Response('{"detail":"lost"}', { status: 503, headers: { "Retry-After": "1" } });
  };
  const moment = client(s, { fetch: flaky, batchSize: 20, flushIntervalMs: 60_000 });
  const made = await decisions(moment, 25, "exp");
  assert.ok(made.every((d) => d.experiment?.id === "hero-test"));
  for (const d of made) {
    moment.outcome({ decisionId: d.decision_id, actionId: d.actions[0].id, type: "convert", value: 2 });
  }
  await eventually(() => moment.pending() === 0, 10_000);
  const keys = (r) => r.events.map((e) => e.idempotency_key);
  assert.deepEqual(requests.map((r) => r.events.length), [20, 20, 5], "two batches, the first retried");
  assert.deepEqual(keys(requests[1]), keys(requests[0]), "the retry carries the same idempotency keys");
  assert.ok(requests[1].at - requests[0].at >= 1000, "the retry waited for Retry-After");
  assert.equal(new Set([...keys(requests[0]), ...keys(requests[2])]).size, 25);
  assert.deepEqual(moment.errors.map((e) => e.status), [503]);

  // All 25 again, as a duplicate beacon sends them: the publishable key in
  // the URL and a text/plain body, which /v1/outcomes alone accepts.
  const beacon = await fetch(`${s.base}/v1/outcomes?key=${encodeURIComponent(s.keys.decide)}`, {
    method: "POST",
    headers: { "Content-Type": "text/plain;charset=UTF-8" },
    body: JSON.stringify({ events: [...requests[0].events, ...requests[2].events] }),
  });
  assert.equal(beacon.status, 202);
  assert.deepEqual(await beacon.json(), { accepted: 0, duplicates: 25 });

  const results = await api(s, "GET", "/v1/experiments/hero-test/results", s.keys.editor);
  const sum = (field) => results.variants.reduce((total, v) => total + v[field], 0);
  assert.equal(sum("exposures"), 25);
  assert.equal(sum("conversions"), 25);
  assert.equal(sum("value"), 50, "each outcome's value counted once");
  moment.close();
});

test("a refused outcome does not sink the others of its batch", async () => {
  const s = await server();
  const moment = client(s, { flushIntervalMs: 60_000 });
  const [a, b] = await decisions(moment, 2, "refused");
  moment.outcome({ decisionId: a.decision_id, actionId: a.actions[0].id, type: "click" });
  moment.outcome({ decisionId: "no-such-decision", actionId: "spring-sale", type: "click" });
  moment.outcome({ decisionId: b.decision_id, actionId: b.actions[0].id, type: "click" });
  await moment.flush();
  assert.equal(moment.pending(), 0);
  assert.deepEqual(moment.errors.map((e) => e.status), [404, 404], "the batch, then the bad one alone");
  for (const customer of ["refused-0", "refused-1"]) {
    const profile = await api(s, "GET", `/v1/customers/${customer}`, s.keys.editor);
    assert.equal(profile.history["spring-sale"].counts.click, 1, customer);
  }
  moment.close();
});

test("a queue survives a reload while the network is unplugged", async () => {
  const s = await server();
  const storage = memoryStorage();
  const [decision] = await decisions(client(s), 1, "reload");
  // The first page: the network is unplugged (every request fails as a
  // browser's fetch does offline).
  const unplugged = () => Promise.reject(new TypeError("Failed to fetch"));
  const before = client(s, { storage, fetch: unplugged, retryBaseMs: 60_000 });
  before.impression(decision);
  before.outcome({ decisionId: decision.decision_id, actionId: "spring-sale", type: "accept", value: 30 });
  await before.flush();
  assert.equal(before.pending(), 2, "unsent outcomes stay queued");
  assert.equal(before.errors[0].kind, "network");
  before.close();


  // The reloaded page, with the server back: what was queued goes out at once.
  const after = client(s, { storage });
  await eventually(() => after.pending() === 0);
  const profile = await api(s, "GET", "/v1/customers/reload-0", s.keys.editor);
  assert.equal(profile.history["spring-sale"].counts.impression, 1);
  assert.equal(profile.history["spring-sale"].counts.accept, 1);
  after.close();
});

test("outcomes are kept in memory when storage refuses to hold them", async () => {
  const s = await server();
  const [decision] = await decisions(client(s), 1, "full");
  const full = memoryStorage();
  full.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  const moment = client(s, { storage: full, flushIntervalMs: 60_000 });
  moment.outcome({ decisionId: decision.decision_id, actionId: "spring-sale", type: "click" });
  assert.equal(moment.pending(), 1, "queued in memory");
  assert.equal(moment.errors[0].kind, "storage");
  await moment.flush();
  assert.equal(moment.pending(), 0);
  const profile = await api(s, "GET", "/v1/customers/full-0", s.keys.editor);
  assert.equal(profile.history["spring-sale"].counts.click, 1);
  moment.close();
});

test("a refused key keeps the queue and backs off, for the key or origin may be fixed", async () => {
  const s = await server();
  const [decision] = await decisions(client(s), 1, "badkey");
  const moment = client({ base: s.base, keys: { decide: "mk_decide_revoked" } }, { retryBaseMs: 60_000 });
  moment.outcome({ decisionId: decision.decision_id, actionId: "spring-sale", type: "click" });
  await moment.flush();
  assert.equal(moment.pending(), 1, "kept for later");
  assert.deepEqual(moment.errors.map((e) => e.status), [401]);
  assert.match(moment.errors[0].message, /unknown or revoked/);
  moment.close();
});
