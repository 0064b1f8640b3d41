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
/** What went wrong: a request that timed out, failed or was refused. */
export class MomentError extends Error {
    constructor(kind, message, status) {
        super(message);
        this.name = "MomentError";
        this.kind = kind;
        this.status = status;
    }
}
/** A `StorageLike` in memory: what the client uses where there is no `localStorage`. */
export function memoryStorage() {
    const items = new Map();
    return {
        getItem: (key) => items.get(key) ?? null,
        setItem: (key, value) => void items.set(key, String(value)),
        removeItem: (key) => void items.delete(key),
    };
}
function defaultStorage() {
    try {
        const storage = globalThis.localStorage;
        if (storage) {
            const probe = "moment.probe";
            storage.setItem(probe, "1");
            storage.removeItem(probe);
            return storage;
        }
    }
    catch {
        // Disabled, or a private mode that refuses writes.
    }
    return memoryStorage();
}
/** 16 random bytes as hex; crypto where there is one. */
function randomHex() {
    const bytes = new Uint8Array(16);
    const crypto = globalThis.crypto;
    if (crypto?.getRandomValues) {
        crypto.getRandomValues(bytes);
    }
    else {
        for (let i = 0; i < bytes.length; i++)
            bytes[i] = Math.floor(Math.random() * 256);
    }
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
/** Retry-After (seconds or an HTTP date) in ms, or undefined. */
function retryAfterMs(value) {
    if (!value)
        return undefined;
    const seconds = Number(value);
    if (Number.isFinite(seconds))
        return Math.max(0, seconds * 1000);
    const date = Date.parse(value);
    return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
/** The problem+json `detail` of a refused request, else its status line. */
async function refusal(response) {
    let detail = `${response.status} ${response.statusText}`.trim();
    try {
        const body = await response.json();
        if (body && typeof body.detail === "string")
            detail = `${response.status}: ${body.detail}`;
    }
    catch {
        // Not JSON: keep the status line.
    }
    return new MomentError("http", detail, response.status);
}
function asError(error) {
    if (error instanceof MomentError)
        return error;
    const message = error instanceof Error ? error.message : String(error);
    return new MomentError("network", message);
}
/** True for a status worth retrying: the server may take the same request later. */
function retryable(status) {
    return status === 408 || status === 429 || status >= 500;
}
/** Makes a client; see `ClientOptions` for the defaults. */
export function createClient(options) {
    const base = options.baseUrl.replace(/\/+$/, "");
    const key = options.key;
    const timeoutMs = options.timeoutMs ?? 1000;
    const cacheTtlMs = options.cacheTtlMs ?? 3600000;
    const cacheEntries = options.cacheEntries ?? 50;
    const batchSize = Math.max(1, Math.min(options.batchSize ?? 20, 1000));
    const flushIntervalMs = options.flushIntervalMs ?? 1000;
    const maxQueue = options.maxQueue ?? 1000;
    const retryBaseMs = options.retryBaseMs ?? 1000;
    const retryMaxMs = options.retryMaxMs ?? 60000;
    // Replaced by memory, for the rest of the page's life, if it refuses a write.
    let storage = options.storage ?? defaultStorage();
    const ns = options.namespace ?? "moment";
    const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const onError = options.onError ?? (() => { });
    const fallbacks = options.fallbacks ?? {};
    const keys = {
        queue: `${ns}.outcomes`,
        cache: `${ns}.decisions`,
        anonymous: `${ns}.anonymous_id`,
        customer: `${ns}.customer_id`,
    };
    function read(name, empty) {
        try {
            const text = storage.getItem(name);
            return text ? JSON.parse(text) : empty;
        }
        catch {
            return empty;
        }
    }
    /** Stores `value`; when storage refuses (full, or disabled meanwhile), moves to memory. */
    function write(name, value) {
        const text = JSON.stringify(value);
        try {
            storage.setItem(name, text);
        }
        catch (e) {
            onError(new MomentError("storage", `storage refused ${name} (${asError(e).message}); keeping it in memory`));
            const memory = memoryStorage();
            for (const kept of Object.values(keys)) {
                try {
                    const held = storage.getItem(kept);
                    if (held !== null)
                        memory.setItem(kept, held);
                }
                catch {
                    // Unreadable too: nothing to carry over.
                }
            }
            memory.setItem(name, text);
            storage = memory;
        }
    }
    // --- ids -------------------------------------------------------------
    function customerId() {
        const known = read(keys.customer, null);
        if (typeof known === "string" && known)
            return known;
        let anonymous = read(keys.anonymous, null);
        if (typeof anonymous !== "string" || !anonymous) {
            anonymous = `anon-${randomHex()}`;
            write(keys.anonymous, anonymous);
        }
        return anonymous;
    }
    function identify(id) {
        if (id)
            write(keys.customer, id);
        else {
            try {
                storage.removeItem(keys.customer);
            }
            catch {
                write(keys.customer, null);
            }
        }
    }
    // --- decisions -------------------------------------------------------
    const cacheKey = (point, customer, channel) => JSON.stringify([point, customer, channel ?? null]);
    function remember(slot, decision) {
        const cache = read(keys.cache, {});
        cache[slot] = { at: Date.now(), decision };
        const slots = Object.keys(cache).sort((a, b) => cache[b].at - cache[a].at);
        for (const old of slots.slice(cacheEntries))
            delete cache[old];
        write(keys.cache, cache);
    }
    function recall(slot) {
        const entry = read(keys.cache, {})[slot];
        return entry && Date.now() - entry.at <= cacheTtlMs ? entry.decision : undefined;
    }
    async function ask(body, signal) {
        const response = await doFetch(`${base}/v1/decide`, {
            method: "POST",
            headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
            body: JSON.stringify(body),
            signal,
        });
        if (!response.ok)
            throw await refusal(response);
        const answer = await response.json();
        if (!answer || typeof answer.decision_id !== "string" || !Array.isArray(answer.actions)) {
            throw new MomentError("invalid", "the answer is not a decision");
        }
        return {
            decision_id: answer.decision_id,
            point: answer.point,
            customer_id: body.customer_id,
            policy: answer.policy ?? null,
            experiment: answer.experiment ?? null,
            actions: answer.actions,
            fallback: Boolean(answer.fallback),
            source: "network",
        };
    }
    async function decide(request, fallback) {
        const body = {
            ...request,
            customer_id: request.customer_id ?? customerId(),
            channel: request.channel ?? options.channel,
        };
        if (body.channel === undefined)
            delete body.channel;
        const slot = cacheKey(body.point, body.customer_id, body.channel);
        const aborter = typeof AbortController === "function" ? new AbortController() : undefined;
        let timer;
        const deadline = new Promise((_, reject) => {
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
        }
        catch (e) {
            const error = asError(e);
            onError(error);
            const cached = recall(slot);
            if (cached)
                return { ...cached, source: "cache", error };
            const actions = (fallback ?? fallbacks[body.point] ?? []).map((a) => ({
                id: a.id,
                kind: a.kind ?? "message",
                score: 0,
                payload: a.payload ?? null,
            }));
            return {
                decision_id: null,
                point: body.point,
                customer_id: body.customer_id,
                policy: null,
                experiment: null,
                actions,
                fallback: true,
                source: "fallback",
                error,
            };
        }
        finally {
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
    let timer;
    let timerAt = Infinity;
    let sending;
    let closed = false;
    const stored = () => read(keys.queue, []).filter((q) => q && q.idempotency_key);
    /** Flushes in `delayMs`, unless a flush comes sooner; `replace` drops that one (a backoff). */
    function schedule(delayMs, replace = false) {
        if (closed)
            return;
        const at = Date.now() + delayMs;
        if (timer !== undefined && timerAt <= at && !replace)
            return;
        clearTimeout(timer);
        timerAt = at;
        timer = setTimeout(() => {
            timer = undefined;
            timerAt = Infinity;
            void flush();
        }, delayMs);
        // In Node, a pending flush must not keep the process alive.
        timer.unref?.();
    }
    function enqueue(item) {
        const queue = stored();
        if (queue.some((q) => q.idempotency_key === item.idempotency_key))
            return;
        queue.push(item);
        const dropped = queue.length - maxQueue;
        if (dropped > 0) {
            queue.splice(0, dropped);
            onError(new MomentError("dropped", `the outcome queue is full: dropped the ${dropped} oldest`));
        }
        write(keys.queue, queue);
        if (attempt === 0)
            schedule(queue.length >= batchSize ? 0 : flushIntervalMs);
    }
    function acknowledge(sent) {
        const done = new Set(sent.map((q) => q.idempotency_key));
        write(keys.queue, stored().filter((q) => !done.has(q.idempotency_key)));
    }
    /** Sends `events`; true when the server took them or refused them for good. */
    async function post(events) {
        let response;
        try {
            response = await doFetch(`${base}/v1/outcomes`, {
                method: "POST",
                headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
                body: JSON.stringify({ events }),
            });
        }
        catch (e) {
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
            if (!(await post([event])))
                return false;
        }
        return true;
    }
    function backOff(afterMs) {
        attempt += 1;
        const exponential = Math.min(retryMaxMs, retryBaseMs * 2 ** (attempt - 1));
        const jittered = exponential / 2 + Math.random() * (exponential / 2);
        schedule(Math.max(afterMs ?? 0, jittered), true);
    }
    async function drain() {
        // Sent in this drain: never sent twice by it, whatever storage holds.
        const sent = new Set();
        for (;;) {
            const batch = stored()
                .filter((q) => !sent.has(q.idempotency_key))
                .slice(0, batchSize);
            if (batch.length === 0) {
                attempt = 0;
                return;
            }
            batch.forEach((q) => sent.add(q.idempotency_key));
            if (!(await post(batch)))
                return;
            attempt = 0;
        }
    }
    function flush() {
        if (!sending) {
            sending = drain().finally(() => {
                sending = undefined;
            });
        }
        return sending;
    }
    function outcome(input) {
        if (!input.decisionId)
            return;
        enqueue({
            decision_id: input.decisionId,
            action_id: input.actionId,
            type: input.type,
            ...(input.value === undefined ? {} : { value: input.value }),
            idempotency_key: input.idempotencyKey ?? `o-${randomHex()}`,
        });
    }
    function impression(decision, actionId) {
        if (!decision.decision_id)
            return;
        for (const action of decision.actions) {
            if (actionId !== undefined && action.id !== actionId)
                continue;
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
    function beacon() {
        const queue = stored();
        const url = `${base}/v1/outcomes?key=${encodeURIComponent(key)}`;
        const nav = globalThis
            .navigator;
        for (let i = 0; i < queue.length; i += batchSize) {
            const body = JSON.stringify({ events: queue.slice(i, i + batchSize) });
            let sent = false;
            try {
                sent = nav?.sendBeacon?.(url, body) ?? false;
            }
            catch {
                sent = false;
            }
            if (!sent) {
                doFetch(url, {
                    method: "POST",
                    body,
                    keepalive: true,
                    headers: { "Content-Type": "text/plain" },
                }).catch(() => { });
            }
        }
    }
    const doc = globalThis.document;
    const win = globalThis.addEventListener
        ? globalThis
        : undefined;
    const onHidden = () => {
        if (doc?.visibilityState === "hidden")
            beacon();
    };
    const listening = options.beacon ?? true;
    if (listening && doc && win) {
        doc.addEventListener("visibilitychange", onHidden);
        win.addEventListener("pagehide", beacon);
    }
    function close() {
        closed = true;
        clearTimeout(timer);
        timer = undefined;
        if (listening && doc && win) {
            doc.removeEventListener("visibilitychange", onHidden);
            win.removeEventListener("pagehide", beacon);
        }
    }
    // What an earlier page left queued goes out now.
    if (stored().length > 0)
        schedule(0);
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
