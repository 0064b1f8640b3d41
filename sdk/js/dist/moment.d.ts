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
    policy: {
        name: string;
        version: number;
    } | null;
    /** The experiment and variant, when the customer is in one. */
    experiment: {
        id: string;
        variant: string;
    } | null;
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
export declare class MomentError extends Error {
    /** timeout, network, http (the server refused), invalid (a bad answer), storage, dropped. */
    readonly kind: "timeout" | "network" | "http" | "invalid" | "storage" | "dropped";
    /** The HTTP status, for `http`. */
    readonly status?: number;
    constructor(kind: MomentError["kind"], message: string, status?: number);
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
/** A `StorageLike` in memory: what the client uses where there is no `localStorage`. */
export declare function memoryStorage(): StorageLike;
/** Makes a client; see `ClientOptions` for the defaults. */
export declare function createClient(options: ClientOptions): MomentClient;
