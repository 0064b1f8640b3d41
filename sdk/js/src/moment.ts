/**
 * Moment's client for web pages and kiosks.
 *
 * - `decide` never throws and always answers within its timeout: the
 *   network's answer, else the last good answer for this point and customer
 *   if it is still fresh, else the caller's fallback actions; `source` says
 *   which, `error` says why.
 * - `outcome` queues; the queue is persisted, sent in batches, retried with
 *   backoff, and sent by beacon when the page hides. Every outcome carries an
 *   idempotency key, so a retry or a duplicate beacon counts once.
 *
 * No dependencies; runs in browsers and in Node 18+.
 */

/** One action of a decision, best first. */
export interface Action {
  /** The catalog action's id. */
  id: string;
  /** offer, message, service… as the catalog says. */
  kind: string;
  /** The policy's score (0 for a caller's fallback action). */
  score: number;
  /** What to render: the catalog action's payload. */
  payload?: unknown;
}

/** An action the caller supplies for when Moment cannot be reached. */
export interface FallbackAction {
  /** The action's id (no outcome is sent for a fallback: Moment did not decide it). */
  id: string;
  /** Defaults to "message". */
  kind?: string;
  /** What to render. */
  payload?: unknown;
}

/** What to decide: `POST /v1/decide`'s body. */
export interface DecideRequest {
  /** The decision point. */
  point: string;
  /** Defaults to `client.customerId()` (the known or the anonymous id). */
  customer_id?: string;
  /** Life-cycle stage; defaults to the stored profile's. */
  stage?: string;
  /** Defaults to the client's `channel`. */
  channel?: string;
  /** Customer attributes for this request. */
  attributes?: Record<string, unknown>;
  /** What is happening now: page, basket, reason for the call… */
  context?: Record<string, unknown>;
  /** How many actions to return (the server's default is 3). */
  limit?: number;
  /** At most this many actions of a kind, e.g. `{ "offer": 1 }`. */
  max_per_kind?: Record<string, number>;
  /** Count the returned actions as shown (for screens that always show what they get). */
  record_impressions?: boolean;
}

/** Where an answer came from. */
export type Source = "network" | "cache" | "fallback";

/** A decision, as `decide` resolves it. */
export interface Decision {
  /** Id to report outcomes against; null for the caller's fallback. */
  decision_id: string | null;
  /** The decision point. */
  point: string;
  /** The customer decided for. */
  customer_id: string;
  /** The policy version that decided; null for the caller's fallback. */
  policy: { name: string; version: number } | null;
  /** The experiment and variant, when the customer is in one. */
  experiment: { id: string; variant: string } | null;
  /** Ranked actions, best first. */
  actions: Action[];
  /** True when these are fallback actions (the server's or the caller's). */
  fallback: boolean;
  /** network: answered now; cache: an earlier answer; fallback: the caller's. */
  source: Source;
  /** Why the network did not answer, when it did not. */
  error?: MomentError;
}

/** What went wrong: a request that timed out, failed or was refused. */
export class MomentError extends Error {
  /** timeout, network, http (the server refused), invalid (a bad answer), storage, dropped. */
  readonly kind: "timeout" | "network" | "http" | "invalid" | "storage" | "dropped";
  /** The HTTP status, for `http`. */
  readonly status?: number;

  constructor(kind: MomentError["kind"], message: string, status?: number) {
    super(message);
    this.name = "MomentError";
    this.kind = kind;
    this.status = status;
  }
}

/** What happened to an action. */
export type OutcomeType = "impression" | "click" | "accept" | "reject" | "convert";

/** An outcome to report. */
export interface OutcomeInput {
  /** The decision it follows. */
  decisionId: string;
  /** The action concerned. */
  actionId: string;
  /** What happened. */
  type: OutcomeType;
  /** Business value, e.g. revenue. */
  value?: number;
  /** Makes reporting the same thing twice count once; a random one by default. */
  idempotencyKey?: string;
}

/** The part of the Web Storage API the client uses (`localStorage` fits). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The client's settings; only `baseUrl` and `key` are required. */
export interface ClientOptions {
  /** Where Moment answers, e.g. "https://moment.example.com". */
  baseUrl: string;
  /** The tenant's publishable (decide) key. */
  key: string;
  /** The channel sent with every decision unless a request names one. */
  channel?: string;
  /** Longest wait for a decision, in ms. Default 1000. */
  timeoutMs?: number;
  /** Fallback actions per decision point, for when a call gives none. */
  fallbacks?: Record<string, FallbackAction[]>;
  /** How long an earlier answer may stand in, in ms. Default 3,600,000 (an hour). */
  cacheTtlMs?: number;
  /** Most answers kept for standing in. Default 50. */
  cacheEntries?: number;
  /** Outcomes per request. Default 20. */
  batchSize?: number;
  /** Longest an outcome waits before it is sent, in ms. Default 1000. */
  flushIntervalMs?: number;
  /** Most outcomes held; the oldest are dropped beyond it. Default 1000. */
  maxQueue?: number;
  /** First retry delay, in ms; doubled per attempt. Default 1000. */
  retryBaseMs?: number;
  /** Longest retry delay, in ms. Default 60,000. */
  retryMaxMs?: number;
  /** Longest wait for the server to acknowledge outcomes, in ms. Default 10,000. */
  sendTimeoutMs?: number;
  /** Where the queue, cached answers and ids persist. Default `localStorage` if usable, else memory. */
  storage?: StorageLike | null;
  /** Prefix of the storage keys. Default "moment." plus a hash of `baseUrl` and `key`, so clients of different servers or tenants keep apart. */
  namespace?: string;
  /** The fetch to use. Default the global one. */
  fetch?: typeof fetch;
  /** Told of every failure; decide and outcome never throw. */
  onError?: (error: MomentError) => void;
  /** Send the queue by beacon when the page hides. Default true in browsers. */
  beacon?: boolean;
}

/** The client `createClient` makes. */
export interface MomentClient {
  /** Decides; never throws, answers within `timeoutMs`. */
  decide(request: DecideRequest, fallback?: FallbackAction[]): Promise<Decision>;
  /** Queues an outcome; ignored for a decision without id (the caller's fallback). */
  outcome(outcome: OutcomeInput): void;
  /** Reports that an action of a decision was shown; counts once per decision and action. */
  impression(decision: Decision, actionId?: string): void;
  /** Sends everything queued now; resolves when the queue is empty or a send failed. */
  flush(): Promise<void>;
  /** Outcomes not yet acknowledged by the server. */
  pending(): number;
  /** The known customer's id, else an anonymous id kept in storage. */
  customerId(): string;
  /** Sets the known customer (after sign-in), or forgets it with null. */
  identify(customerId: string | null): void;
  /** Stops timers and page listeners; what is queued stays in storage. */
  close(): void;
}

/** An outcome as `POST /v1/outcomes` takes it. */
interface Event {
  decision_id: string;
  action_id: string;
  type: OutcomeType;
  value?: number;
  /** Absent for impressions: the server's own key (decision, action, type) counts them once. */
  idempotency_key?: string;
}

/** A queued outcome: the event and the id the queue knows it by. */
interface Queued {
  id: string;
  event: Event;
}

interface Cached {
  at: number;
  decision: Omit<Decision, "source" | "error">;
}

/** A `StorageLike` in memory: what the client uses where there is no `localStorage`. */
export function memoryStorage(): StorageLike {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
  };
}

function defaultStorage(): StorageLike {
  try {
    const storage = (globalThis as { localStorage?: StorageLike }).localStorage;
    if (storage) {
      const probe = "moment.probe";
      storage.setItem(probe, "1");
      storage.removeItem(probe);
      return storage;
    }
  } catch {
    // Disabled, or a private mode that refuses writes.
  }
  return memoryStorage();
}

/** 16 random bytes as hex; crypto where there is one. */
function randomHex(): string {
  const bytes = new Uint8Array(16);
  const crypto = (globalThis as { crypto?: { getRandomValues(b: Uint8Array): Uint8Array } }).crypto;
  if (crypto?.getRandomValues) {
    crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Retry-After (seconds or an HTTP date) in ms, or undefined. */
function retryAfterMs(header: string | null): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The problem+json `detail` of a refused request, else its status line. */
async function refusal(response: Response): Promise<MomentError> {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") detail = `${response.status}: ${body.detail}`;
  } catch {
    // Not JSON: keep the status line.
  }
  return new MomentError("http", detail, response.status);
}

function asError(error: unknown): MomentError {
  if (error instanceof MomentError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new MomentError("network", message);
}

/**
 * True when the server refused outcomes themselves (unknown decision, bad
 * field, too many at once), not the request: worth sending them one by one.
 * Any other refusal (the key, the origin, the server's state) is retried.
 */
function refusesEvents(status: number): boolean {
  return status === 400 || status === 404 || status === 413 || status === 422;
}

/** The longest delay timers take: longer ones fire at once. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** A short hash (FNV-1a, 32 bits, hex) naming a client's storage. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Makes a client; see `ClientOptions` for the defaults. */
export function createClient(options: ClientOptions): MomentClient {
  const base = options.baseUrl.replace(/\/+$/, "");
  const key = options.key;
  const timeoutMs = options.timeoutMs ?? 1000;
  const cacheTtlMs = options.cacheTtlMs ?? 3_600_000;
  const cacheEntries = options.cacheEntries ?? 50;
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 20, 1000));
  const flushIntervalMs = options.flushIntervalMs ?? 1000;
  const maxQueue = options.maxQueue ?? 1000;
  const retryBaseMs = options.retryBaseMs ?? 1000;
  const retryMaxMs = options.retryMaxMs ?? 60_000;
  const sendTimeoutMs = options.sendTimeoutMs ?? 10_000;
  // Replaced by memory, for the rest of the page's life, if it refuses a write.
  let storage = options.storage ?? defaultStorage();
  const ns = options.namespace ?? `moment.${hash(`${base} ${key}`)}`;
  const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const report = options.onError ?? (() => {});
  /** Tells `onError`; a callback that throws changes nothing here. */
  const onError = (error: MomentError) => {
    try {
      report(error);
    } catch {
      // The caller's callback failed; the client carries on.
    }
  };
  const fallbacks = options.fallbacks ?? {};

  const keys = {
    queue: `${ns}.outcomes`,
    cache: `${ns}.decisions`,
    anonymous: `${ns}.anonymous_id`,
    customer: `${ns}.customer_id`,
  };

  /** What storage holds under `name`, parsed; `undefined` when absent or unreadable. */
  function read(name: string): unknown {
    try {
      const text = storage.getItem(name);
      return text ? JSON.parse(text) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Stores `value`. When storage refuses (full, or disabled meanwhile), the
   * cached answers go first; if it still refuses, the client moves to
   * memory for the page's life rather than lose the queue.
   */
  function write(name: string, value: unknown): void {
    const text = JSON.stringify(value);
    try {
      storage.setItem(name, text);
      return;
    } catch {
      // Cached answers are the first to go.
      forget(keys.cache);
    }
    if (name === keys.cache) return;
    try {
      storage.setItem(name, text);
    } catch (e) {
      onError(
        new MomentError("storage", `storage refused ${name} (${asError(e).message}); keeping it in memory`),
      );
      const memory = memoryStorage();
      for (const kept of Object.values(keys)) {
        try {
          const held = storage.getItem(kept);
          if (held !== null) memory.setItem(kept, held);
        } catch {
          // Unreadable too: nothing to carry over.
        }
      }
      memory.setItem(name, text);
      storage = memory;
    }
  }

  function forget(name: string): void {
    try {
      storage.removeItem(name);
    } catch {
      // Nothing more to do.
    }
  }

  // --- ids -------------------------------------------------------------

  function customerId(): string {
    const known = read(keys.customer);
    if (typeof known === "string" && known) return known;
    let anonymous = read(keys.anonymous);
    if (typeof anonymous !== "string" || !anonymous) {
      anonymous = `anon-${randomHex()}`;
      write(keys.anonymous, anonymous);
    }
    return anonymous as string;
  }

  function identify(id: string | null): void {
    if (id) write(keys.customer, id);
    else forget(keys.customer);
  }

  // --- decisions -------------------------------------------------------

  const cacheKey = (point: string, customer: string, channel: string | undefined) =>
    JSON.stringify([point, customer, channel ?? null]);

  /** The stored answers by slot (anything else stored there is ignored). */
  function cached(): Record<string, Cached> {
    const cache = read(keys.cache);
    const valid: Record<string, Cached> = {};
    if (isObject(cache)) {
      for (const [slot, entry] of Object.entries(cache)) {
        if (isObject(entry) && typeof entry.at === "number" && isObject(entry.decision)) {
          valid[slot] = entry as unknown as Cached;
        }
      }
    }
    return valid;
  }

  function remember(slot: string, decision: Cached["decision"]): void {
    const cache = cached();
    cache[slot] = { at: Date.now(), decision };
    const slots = Object.keys(cache).sort((a, b) => cache[b].at - cache[a].at);
    for (const old of slots.slice(cacheEntries)) delete cache[old];
    write(keys.cache, cache);
  }

  function recall(slot: string): Cached["decision"] | undefined {
    const all = cached();
    const entry = Object.prototype.hasOwnProperty.call(all, slot) ? all[slot] : undefined;
    return entry && Date.now() - entry.at <= cacheTtlMs ? entry.decision : undefined;
  }

  async function ask(body: DecideRequest, signal: AbortSignal | undefined): Promise<Decision> {
    const response = await doFetch(`${base}/v1/decide`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok) throw await refusal(response);
    let answer;
    try {
      answer = await response.json();
    } catch {
      answer = undefined;
    }
    if (!answer || typeof answer.decision_id !== "string" || !Array.isArray(answer.actions)) {
      throw new MomentError("invalid", "the answer is not a decision");
    }
    return {
      decision_id: answer.decision_id,
      point: answer.point,
      customer_id: body.customer_id as string,
      policy: answer.policy ?? null,
      experiment: answer.experiment ?? null,
      actions: answer.actions,
      fallback: Boolean(answer.fallback),
      source: "network",
    };
  }

  async function decide(request: DecideRequest, fallback?: FallbackAction[]): Promise<Decision> {
    const body: DecideRequest = {
      ...request,
      customer_id: request.customer_id ?? customerId(),
      channel: request.channel ?? options.channel,
    };
    if (body.channel === undefined) delete body.channel;
    const slot = cacheKey(body.point, body.customer_id as string, body.channel);
    const aborter = typeof AbortController === "function" ? new AbortController() : undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        aborter?.abort();
        reject(new MomentError("timeout", `no decision within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      const decision = await Promise.race([ask(body, aborter?.signal), deadline]);
      const { source: _source, ...kept } = decision;
      try {
        remember(slot, kept);
      } catch {
        // Not kept for next time; this answer stands.
      }
      return decision;
    } catch (e) {
      const error = asError(e);
      onError(error);
      const earlier = recall(slot);
      if (earlier) return { ...earlier, source: "cache", error };
      const configured = Object.prototype.hasOwnProperty.call(fallbacks, body.point)
        ? fallbacks[body.point]
        : undefined;
      const given = Array.isArray(fallback) ? fallback : Array.isArray(configured) ? configured : [];
      const actions = given.filter(isObject).map((a) => ({
        id: a.id,
        kind: a.kind ?? "message",
        score: 0,
        payload: a.payload ?? null,
      }));
      return {
        decision_id: null,
        point: body.point,
        customer_id: body.customer_id as string,
        policy: null,
        experiment: null,
        actions,
        fallback: true,
        source: "fallback",
        error,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  // --- outcomes --------------------------------------------------------
  //
  // The queue lives in storage, so that a reload or a power cut keeps it:
  // each change reads the stored queue, applies itself and writes it back,
  // so two tabs rarely overwrite each other's outcomes (storage has no
  // transactions: two writes in the same instant can still race). An
  // outcome leaves the queue only when the server has acknowledged it.

  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerAt = Infinity;
  let sending: Promise<void> | undefined;
  let closed = false;

  /** The stored queue (anything else stored there is ignored). */
  function stored(): Queued[] {
    const queue = read(keys.queue);
    return Array.isArray(queue)
      ? queue.filter((q): q is Queued => isObject(q) && typeof q.id === "string" && isObject(q.event))
      : [];
  }

  /** Flushes in `delayMs`, unless a flush comes sooner; `replace` drops that one (a backoff). */
  function schedule(delayMs: number, replace = false): void {
    if (closed) return;
    const delay = Math.min(Math.max(0, delayMs), MAX_DELAY_MS);
    const at = Date.now() + delay;
    if (timer !== undefined && timerAt <= at && !replace) return;
    clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = undefined;
      timerAt = Infinity;
      flush().catch(() => {});
    }, delay);
    // In Node, a pending flush must not keep the process alive.
    (timer as { unref?: () => void }).unref?.();
  }

  function enqueue(item: Queued): void {
    const queue = stored();
    if (queue.some((q) => q.id === item.id)) return;
    queue.push(item);
    const dropped = queue.length - maxQueue;
    if (dropped > 0) {
      queue.splice(0, dropped);
      onError(new MomentError("dropped", `the outcome queue is full: dropped the ${dropped} oldest`));
    }
    write(keys.queue, queue);
    if (attempt === 0) schedule(queue.length >= batchSize ? 0 : flushIntervalMs);
  }

  function acknowledge(sent: Queued[]): void {
    const done = new Set(sent.map((q) => q.id));
    write(keys.queue, stored().filter((q) => !done.has(q.id)));
  }

  /** Sends `items`; true when the server took them or refused them for good. */
  async function post(items: Queued[]): Promise<boolean> {
    const aborter = typeof AbortController === "function" ? new AbortController() : undefined;
    const deadline = setTimeout(() => aborter?.abort(), sendTimeoutMs);
    let response: Response;
    try {
      response = await doFetch(`${base}/v1/outcomes`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ events: items.map((q) => q.event) }),
        signal: aborter?.signal,
      });
    } catch (e) {
      onError(asError(e));
      backOff(undefined);
      return false;
    } finally {
      clearTimeout(deadline);
    }
    if (response.ok) {
      // Read to the end, so the connection can serve the next request.
      await response.text().catch(() => "");
      acknowledge(items);
      return true;
    }
    const error = await refusal(response);
    onError(error);
    if (!refusesEvents(response.status)) {
      // The key, the origin or the server: nothing wrong with the outcomes,
      // which wait for the cause to pass.
      backOff(retryAfterMs(response.headers.get("Retry-After")));
      return false;
    }
    // A batch is all or nothing on the server, so one bad outcome (say, for
    // a decision too old to find) would sink the others: send them one by
    // one, and drop only those refused alone.
    if (items.length === 1) {
      acknowledge(items);
      return true;
    }
    for (const item of items) {
      if (!(await post([item]))) return false;
    }
    return true;
  }

  function backOff(afterMs: number | undefined): void {
    attempt += 1;
    const exponential = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(attempt - 1, 30));
    const jittered = exponential / 2 + Math.random() * (exponential / 2);
    schedule(Math.max(afterMs ?? 0, jittered), true);
  }

  async function drain(): Promise<void> {
    // Sent in this drain: never sent twice by it, whatever storage holds.
    const sent = new Set<string>();
    for (;;) {
      const batch = stored()
        .filter((q) => !sent.has(q.id))
        .slice(0, batchSize);
      if (batch.length === 0) {
        attempt = 0;
        return;
      }
      batch.forEach((q) => sent.add(q.id));
      if (!(await post(batch))) return;
      attempt = 0;
    }
  }

  function flush(): Promise<void> {
    if (!sending) {
      sending = drain()
        .catch((e) => onError(asError(e)))
        .finally(() => {
          sending = undefined;
        });
    }
    return sending;
  }

  function outcome(input: OutcomeInput): void {
    if (!input.decisionId) return;
    const idempotencyKey = input.idempotencyKey ?? `o-${randomHex()}`;
    enqueue({
      id: idempotencyKey,
      event: {
        decision_id: input.decisionId,
        action_id: input.actionId,
        type: input.type,
        ...(input.value === undefined ? {} : { value: input.value }),
        idempotency_key: idempotencyKey,
      },
    });
  }

  function impression(decision: Decision, actionId?: string): void {
    if (!decision.decision_id) return;
    for (const action of decision.actions) {
      if (actionId !== undefined && action.id !== actionId) continue;
      // No idempotency key: the server's own (decision, action, type) counts
      // an impression once, however often it is rendered or recorded.
      enqueue({
        id: JSON.stringify([decision.decision_id, action.id, "impression"]),
        event: { decision_id: decision.decision_id, action_id: action.id, type: "impression" },
      });
    }
  }

  // --- the page going away -----------------------------------------------
  //
  // Beacons cannot set headers: the server takes the publishable key as
  // `?key=` and a text/plain body on /v1/outcomes alone. What is sent this
  // way stays queued until a later send is acknowledged; the idempotency keys
  // make the repeat count once. One beacon per hiding: `pagehide` follows
  // `visibilitychange` when a page closes.

  let beaconed = false;

  function beacon(): void {
    if (beaconed) return;
    beaconed = true;
    const queue = stored();
    const url = `${base}/v1/outcomes?key=${encodeURIComponent(key)}`;
    const nav = (globalThis as { navigator?: { sendBeacon?(url: string, body: string): boolean } })
      .navigator;
    for (let i = 0; i < queue.length; i += batchSize) {
      const body = JSON.stringify({ events: queue.slice(i, i + batchSize).map((q) => q.event) });
      let sent = false;
      try {
        sent = nav?.sendBeacon?.(url, body) ?? false;
      } catch {
        sent = false;
      }
      if (!sent) {
        doFetch(url, {
          method: "POST",
          body,
          keepalive: true,
          headers: { "Content-Type": "text/plain" },
        }).catch(() => {});
      }
    }
  }

  const doc = (globalThis as { document?: Document }).document;
  const win = (globalThis as { addEventListener?: Window["addEventListener"] }).addEventListener
    ? (globalThis as unknown as Window)
    : undefined;
  const onVisibility = () => {
    if (doc?.visibilityState === "hidden") beacon();
    else beaconed = false;
  };
  const onPageShow = () => {
    beaconed = false;
  };
  const listening = (options.beacon ?? true) && doc !== undefined && win !== undefined;
  if (listening) {
    doc.addEventListener("visibilitychange", onVisibility);
    win.addEventListener("pagehide", beacon);
    win.addEventListener("pageshow", onPageShow);
  }

  function close(): void {
    closed = true;
    clearTimeout(timer);
    timer = undefined;
    if (listening) {
      doc.removeEventListener("visibilitychange", onVisibility);
      win.removeEventListener("pagehide", beacon);
      win.removeEventListener("pageshow", onPageShow);
    }
  }

  // What an earlier page left queued goes out now.
  if (stored().length > 0) schedule(0);

  return {
    decide,
    outcome,
    impression,
    flush,
    pending: () => stored().length,
    customerId,
    identify,
    close,
  };
}
