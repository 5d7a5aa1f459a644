// The /ws event stream, reconnecting with capped exponential backoff and full jitter.

export class EventSocket {
  /**
   * @param {object} handlers  onEvent(event), onOpen() (each (re)connect: reload the snapshot), onState(state)
   */
  constructor({ onEvent, onOpen, onState, baseDelayMs = 500, maxDelayMs = 8000 }) {
    Object.assign(this, { onEvent, onOpen, onState, baseDelayMs, maxDelayMs });
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
  }

  get url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  connect() {
    clearTimeout(this.timer);
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onState("live");
      this.onOpen();
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours
      }
      this.onEvent(event);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.retry();
    };
    ws.onerror = () => ws.close();
  }

  retry() {
    this.ws = null;
    this.attempt += 1;
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (this.attempt - 1));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter: spread out a crowd of reconnecting pages
    this.onState("reconnecting");
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
