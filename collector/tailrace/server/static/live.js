// A followed stream that survives a dropped connection: it reconnects with Last-Event-ID, so the
// server replays what came after the last record shown, and never shows a record twice.

import * as api from "./api.js";

const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 4000;

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

function reasonOf(data) {
  try {
    const body = JSON.parse(data);
    return body.message || body.reason || data;
  } catch {
    return data;
  }
}

export class LiveTail {
  // params: the filters; firstParams: added on the first connection only (e.g. tailLines).
  constructor({ path, params, firstParams, lastEventId, onRecord, onState }) {
    this.path = path;
    this.params = params;
    this.firstParams = firstParams || {};
    this.lastId = lastEventId || "";
    this.onRecord = onRecord;
    this.onState = onState;
    this.stopper = new AbortController();
  }

  stop() {
    this.stopper.abort();
  }

  get stopped() {
    return this.stopper.signal.aborted;
  }

  async run() {
    let backoff = BACKOFF_FIRST_MS;
    let dropped = false;
    while (!this.stopped) {
      try {
        const params = this.lastId ? this.params : { ...this.params, ...this.firstParams };
        const stream = api.events(this.path, { ...params, follow: "true" }, {
          lastEventId: this.lastId,
          signal: this.stopper.signal,
          onOpen: () => {
            this.onState("live", dropped ? "reconnected" : "");
            backoff = BACKOFF_FIRST_MS;
            dropped = false;
          },
        });
        for await (const event of stream) {
          if (event.event === "" || event.event === "message") {
            if (event.id) this.lastId = event.id;
            this.onRecord(JSON.parse(event.data), event.id);
          } else if (event.event === "workload-deleted") {
            this.onState("ended", reasonOf(event.data));
            return;
          } else if (event.event === "error") {
            this.onState("reconnecting", reasonOf(event.data));
          }
        }
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof api.AuthRequired) {
          this.onState("auth", err.message);
          return;
        }
        if (err instanceof api.ApiError && !err.transient) {
          this.onState("failed", err.message);
          return;
        }
        this.onState("reconnecting", err.message || String(err));
      }
      if (this.stopped) return;
      dropped = true;
      this.onState("reconnecting", "connection lost");
      await sleep(backoff, this.stopper.signal);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }
}
