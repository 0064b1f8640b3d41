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
  /** Id of the action (report outcomes are not sent for fallbacks). */
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
  /** Where the queue, cached answers and ids persist. Default `localStorage` if usable, else memory. */
  storage?: StorageLike | null;
  /** Prefix of the storage keys. Default "moment". */
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

interface Queued {
  decision_id: string;
  action_id: string;
  type: OutcomeType;
  value?: number;
  idempotency_key: string;
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
function retryAfterMs(value: string | null): number | undefined {
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

/** True for a status worth retrying: the server may take the same request later. */
function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

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
  // Replaced by memory, for the rest of the page's life, if it refuses a write.
  let storage = options.storage ?? defaultStorage();
  const ns = options.namespace ?? "moment";
  const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const onError = options.onError ?? (() => {});
  const fallbacks = options.fallbacks ?? {};

  const keys = {
    queue: `${ns}.outcomes`,
    cache: `${ns}.decisions`,
    anonymous: `${ns}.anonymous_id`,
    customer: `${ns}.customer_id`,
  };

  function read<T>(name: string, empty: T): T {
    try {
      const text = storage.getItem(name);
      return text ? (JSON.parse(text) as T) : empty;
    } catch {
      return empty;
    }
  }

  /** Stores `value`; when storage refuses (full, or disabled meanwhile), moves to memory. */
  function write(name: string, value: unknown): void {
    const text = JSON.stringify(value);
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

  // --- ids -------------------------------------------------------------

  function customerId(): string {
    const known = read<string | null>(keys.customer, null);
    if (typeof known === "string" && known) return known;
    let anonymous = read<string | null>(keys.anonymous, null);
    if (typeof anonymous !== "string" || !anonymous) {
      anonymous = `anon-${randomHex()}`;
      write(keys.anonymous, anonymous);
    }
    return anonymous;
  }

  function identify(id: string | null): void {
    if (id) write(keys.customer, id);
    else {
      try {
        storage.removeItem(keys.customer);
      } catch {
        write(keys.customer, null);
      }
    }
  }

  // --- decisions -------------------------------------------------------

  const cacheKey = (point: string, customer: string, channel: string | undefined) =>
    JSON.stringify([point, customer, channel ?? null]);

  function remember(slot: string, decision: Cached["decision"]): void {
    const cache = read<Record<string, Cached>>(keys.cache, {});
    cache[slot] = { at: Date.now(), decision };
    const slots = Object.keys(cache).sort((a, b) => cache[b].at - cache[a].at);
    for (const old of slots.slice(cacheEntries)) delete cache[old];
    write(keys.cache, cache);
  }

  function recall(slot: string): Cached["decision"] | undefined {
    const entry = read<Record<string, Cached>>(keys.cache, {})[slot];
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
    const answer = await response.json();
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
      remember(slot, kept);
      return decision;
    } catch (e) {
      const error = asError(e);
      onError(error);
      const cached = recall(slot);
      if (cached) return { ...cached, source: "cache", error };
      const actions = (fallback ?? fallbacks[body.point] ?? []).map((a) => ({
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
  // The queue lives in storage, so that a reload or a power cut keeps it and
  // two tabs never overwrite each other's outcomes: each change reads the
  // stored queue, applies itself and writes it back. An outcome leaves the
  // queue only when the server has acknowledged it.

  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerAt = Infinity;
  let sending: Promise<void> | undefined;
  let closed = false;

  const stored = () => read<Queued[]>(keys.queue, []).filter((q) => q && q.idempotency_key);

  /** Flushes in `delayMs`, unless a flush comes sooner; `replace` drops that one (a backoff). */
  function schedule(delayMs: number, replace = false): void {
    if (closed) return;
    const at = Date.now() + delayMs;
    if (timer !== undefined && timerAt <= at && !replace) return;
    clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = undefined;
      timerAt = Infinity;
      void flush();
    }, delayMs);
    // In Node, a pending flush must not keep the process alive.
    (timer as { unref?: () => void }).unref?.();
  }

  function enqueue(item: Queued): void {
    const queue = stored();
    if (queue.some((q) => q.idempotency_key === item.idempotency_key)) return;
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
    const done = new Set(sent.map((q) => q.idempotency_key));
    write(keys.queue, stored().filter((q) => !done.has(q.idempotency_key)));
  }

  /** Sends `events`; true when the server took them or refused them for good. */
  async function post(events: Queued[]): Promise<boolean> {
    let response: Response;
    try {
      response = await doFetch(`${base}/v1/outcomes`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ events }),
      });
    } catch (e) {
      onError(asError(e));
      backOff(undefined);
      return false;
    }
    if (response.ok) {
      acknowledge(events);
      return true;
    }
    const error = await refusal(response);
    onError(error);
    if (retryable(response.status)) {
      backOff(retryAfterMs(response.headers.get("Retry-After")));
      return false;
    }
    // Refused for good. A batch is all or nothing on the server, so one bad
    // outcome (say, for a decision too old to find) would sink the others:
    // send them one by one, and drop only those refused alone.
    if (events.length === 1) {
      acknowledge(events);
      return true;
    }
    for (const event of events) {
      if (!(await post([event]))) return false;
    }
    return true;
  }

  function backOff(afterMs: number | undefined): void {
    attempt += 1;
    const exponential = Math.min(retryMaxMs, retryBaseMs * 2 ** (attempt - 1));
    const jittered = exponential / 2 + Math.random() * (exponential / 2);
    schedule(Math.max(afterMs ?? 0, jittered), true);
  }

  async function drain(): Promise<void> {
    // Sent in this drain: never sent twice by it, whatever storage holds.
    const sent = new Set<string>();
    for (;;) {
      const batch = stored()
        .filter((q) => !sent.has(q.idempotency_key))
        .slice(0, batchSize);
      if (batch.length === 0) {
        attempt = 0;
        return;
      }
      batch.forEach((q) => sent.add(q.idempotency_key));
      if (!(await post(batch))) return;
      attempt = 0;
    }
  }

  function flush(): Promise<void> {
    if (!sending) {
      sending = drain().finally(() => {
        sending = undefined;
      });
    }
    return sending;
  }

  function outcome(input: OutcomeInput): void {
    if (!input.decisionId) return;
    enqueue({
      decision_id: input.decisionId,
      action_id: input.actionId,
      type: input.type,
      ...(input.value === undefined ? {} : { value: input.value }),
      idempotency_key: input.idempotencyKey ?? `o-${randomHex()}`,
    });
  }

  function impression(decision: Decision, actionId?: string): void {
    if (!decision.decision_id) return;
    for (const action of decision.actions) {
      if (actionId !== undefined && action.id !== actionId) continue;
      outcome({
        decisionId: decision.decision_id,
        actionId: action.id,
        type: "impression",
        idempotencyKey: `imp-${decision.decision_id}-${action.id}`,
      });
    }
  }

  // --- the page going away -----------------------------------------------
  //
  // Beacons cannot set headers: the server takes the publishable key as
  // `?key=` and a text/plain body on /v1/outcomes alone. What is sent this
  // way stays queued until a later send is acknowledged; the idempotency keys
  // make the repeat count once.

  function beacon(): void {
    const queue = stored();
    const url = `${base}/v1/outcomes?key=${encodeURIComponent(key)}`;
    const nav = (globalThis as { navigator?: { sendBeacon?(url: string, body: string): boolean } })
      .navigator;
    for (let i = 0; i < queue.length; i += batchSize) {
      const body = JSON.stringify({ events: queue.slice(i, i + batchSize) });
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
  const onHidden = () => {
    if (doc?.visibilityState === "hidden") beacon();
  };
  const listening = options.beacon ?? true;
  if (listening && doc && win) {
    doc.addEventListener("visibilitychange", onHidden);
    win.addEventListener("pagehide", beacon);
  }

  function close(): void {
    closed = true;
    clearTimeout(timer);
    timer = undefined;
    if (listening && doc && win) {
      doc.removeEventListener("visibilitychange", onHidden);
      win.removeEventListener("pagehide", beacon);
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
