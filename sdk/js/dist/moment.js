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
function retryAfterMs(header) {
    const value = header?.trim();
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
/**
 * True when the server refused outcomes themselves (unknown decision, bad
 * field, too many at once), not the request: worth sending them one by one.
 * Any other refusal (the key, the origin, the server's state) is retried.
 */
function refusesEvents(status) {
    return status === 400 || status === 404 || status === 413 || status === 422;
}
/** The longest delay timers take: longer ones fire at once. */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** A short hash (FNV-1a, 32 bits, hex) naming a client's storage. */
function hash(text) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
        h ^= text.charCodeAt(i);
        h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h.toString(16).padStart(8, "0");
}
const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
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
    const sendTimeoutMs = options.sendTimeoutMs ?? 10000;
    // Replaced by memory, for the rest of the page's life, if it refuses a write.
    let storage = options.storage ?? defaultStorage();
    const ns = options.namespace ?? `moment.${hash(`${base} ${key}`)}`;
    const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const report = options.onError ?? (() => { });
    /** Tells `onError`; a callback that throws changes nothing here. */
    const onError = (error) => {
        try {
            report(error);
        }
        catch {
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
    function read(name) {
        try {
            const text = storage.getItem(name);
            return text ? JSON.parse(text) : undefined;
        }
        catch {
            return undefined;
        }
    }
    /**
     * Stores `value`. When storage refuses (full, or disabled meanwhile), the
     * cached answers go first; if it still refuses, the client moves to
     * memory for the page's life rather than lose the queue.
     */
    function write(name, value) {
        const text = JSON.stringify(value);
        try {
            storage.setItem(name, text);
            return;
        }
        catch {
            // Cached answers are the first to go.
            forget(keys.cache);
        }
        if (name === keys.cache)
            return;
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
    function forget(name) {
        try {
            storage.removeItem(name);
        }
        catch {
            // Nothing more to do.
        }
    }
    // --- ids -------------------------------------------------------------
    function customerId() {
        const known = read(keys.customer);
        if (typeof known === "string" && known)
            return known;
        let anonymous = read(keys.anonymous);
        if (typeof anonymous !== "string" || !anonymous) {
            anonymous = `anon-${randomHex()}`;
            write(keys.anonymous, anonymous);
        }
        return anonymous;
    }
    function identify(id) {
        if (id)
            write(keys.customer, id);
        else
            forget(keys.customer);
    }
    // --- decisions -------------------------------------------------------
    const cacheKey = (point, customer, channel) => JSON.stringify([point, customer, channel ?? null]);
    /** The stored answers by slot (anything else stored there is ignored). */
    function cached() {
        const cache = read(keys.cache);
        const valid = {};
        if (isObject(cache)) {
            for (const [slot, entry] of Object.entries(cache)) {
                if (isObject(entry) && typeof entry.at === "number" && isObject(entry.decision)) {
                    valid[slot] = entry;
                }
            }
        }
        return valid;
    }
    function remember(slot, decision) {
        const cache = cached();
        cache[slot] = { at: Date.now(), decision };
        const slots = Object.keys(cache).sort((a, b) => cache[b].at - cache[a].at);
        for (const old of slots.slice(cacheEntries))
            delete cache[old];
        write(keys.cache, cache);
    }
    function recall(slot) {
        const all = cached();
        const entry = Object.prototype.hasOwnProperty.call(all, slot) ? all[slot] : undefined;
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
        let answer;
        try {
            answer = await response.json();
        }
        catch {
            answer = undefined;
        }
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
            try {
                remember(slot, kept);
            }
            catch {
                // Not kept for next time; this answer stands.
            }
            return decision;
        }
        catch (e) {
            const error = asError(e);
            onError(error);
            const earlier = recall(slot);
            if (earlier)
                return { ...earlier, source: "cache", error };
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
    // The queue lives in storage, so that a reload or a power cut keeps it:
    // each change reads the stored queue, applies itself and writes it back,
    // so two tabs rarely overwrite each other's outcomes (storage has no
    // transactions: two writes in the same instant can still race). An
    // outcome leaves the queue only when the server has acknowledged it.
    let attempt = 0;
    let timer;
    let timerAt = Infinity;
    let sending;
    let closed = false;
    /** The stored queue (anything else stored there is ignored). */
    function stored() {
        const queue = read(keys.queue);
        return Array.isArray(queue)
            ? queue.filter((q) => isObject(q) && typeof q.id === "string" && isObject(q.event))
            : [];
    }
    /** Flushes in `delayMs`, unless a flush comes sooner; `replace` drops that one (a backoff). */
    function schedule(delayMs, replace = false) {
        if (closed)
            return;
        const delay = Math.min(Math.max(0, delayMs), MAX_DELAY_MS);
        const at = Date.now() + delay;
        if (timer !== undefined && timerAt <= at && !replace)
            return;
        clearTimeout(timer);
        timerAt = at;
        timer = setTimeout(() => {
            timer = undefined;
            timerAt = Infinity;
            flush().catch(() => { });
        }, delay);
        // In Node, a pending flush must not keep the process alive.
        timer.unref?.();
    }
    function enqueue(item) {
        const queue = stored();
        if (queue.some((q) => q.id === item.id))
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
        const done = new Set(sent.map((q) => q.id));
        write(keys.queue, stored().filter((q) => !done.has(q.id)));
    }
    /** Sends `items`; true when the server took them or refused them for good. */
    async function post(items) {
        const aborter = typeof AbortController === "function" ? new AbortController() : undefined;
        const deadline = setTimeout(() => aborter?.abort(), sendTimeoutMs);
        let response;
        try {
            response = await doFetch(`${base}/v1/outcomes`, {
                method: "POST",
                headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
                body: JSON.stringify({ events: items.map((q) => q.event) }),
                signal: aborter?.signal,
            });
        }
        catch (e) {
            onError(asError(e));
            backOff(undefined);
            return false;
        }
        finally {
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
            if (!(await post([item])))
                return false;
        }
        return true;
    }
    function backOff(afterMs) {
        attempt += 1;
        const exponential = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(attempt - 1, 30));
        const jittered = exponential / 2 + Math.random() * (exponential / 2);
        schedule(Math.max(afterMs ?? 0, jittered), true);
    }
    async function drain() {
        // Sent in this drain: never sent twice by it, whatever storage holds.
        const sent = new Set();
        for (;;) {
            const batch = stored()
                .filter((q) => !sent.has(q.id))
                .slice(0, batchSize);
            if (batch.length === 0) {
                attempt = 0;
                return;
            }
            batch.forEach((q) => sent.add(q.id));
            if (!(await post(batch)))
                return;
            attempt = 0;
        }
    }
    function flush() {
        if (!sending) {
            sending = drain()
                .catch((e) => onError(asError(e)))
                .finally(() => {
                sending = undefined;
            });
        }
        return sending;
    }
    function outcome(input) {
        if (!input.decisionId)
            return;
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
    function impression(decision, actionId) {
        if (!decision.decision_id)
            return;
        for (const action of decision.actions) {
            if (actionId !== undefined && action.id !== actionId)
                continue;
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
    function beacon() {
        if (beaconed)
            return;
        beaconed = true;
        const queue = stored();
        const url = `${base}/v1/outcomes?key=${encodeURIComponent(key)}`;
        const nav = globalThis
            .navigator;
        for (let i = 0; i < queue.length; i += batchSize) {
            const body = JSON.stringify({ events: queue.slice(i, i + batchSize).map((q) => q.event) });
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
    const onVisibility = () => {
        if (doc?.visibilityState === "hidden")
            beacon();
        else
            beaconed = false;
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
    function close() {
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
