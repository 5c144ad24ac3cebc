/**
 * Server-Sent Events read with `fetch`, so the token travels in the Authorization header (an
 * EventSource can send no header, and the token must never be in a URL). The parser follows the
 * HTML standard's event stream rules; the follower reconnects with `Last-Event-ID`.
 */

/** One dispatched event. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
  /** The last event id seen so far (carried over from earlier events, as the standard says). */
  readonly id: string | undefined;
}

/** Incremental parser of a `text/event-stream` body: push decoded text, get the complete events. */
export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;
  /** The reconnection delay the server asked for (`retry:`), in milliseconds. */
  retryMs: number | undefined;
  /** The id to send as `Last-Event-ID` when reconnecting. */
  get lastEventId(): string | undefined {
    return this.#id;
  }

  /** Feeds a chunk of text; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.#buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      if (match === null) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === '\r' && match.index === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event !== undefined) out.push(event);
    }
    return out;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return undefined;
      }
      const event: SseEvent = { event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id };
      this.#event = '';
      this.#data = [];
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return undefined;
  }
}

/** Options of {@link followEvents}. */
export interface FollowOptions {
  /** The stream's URL (same origin). */
  readonly url: string;
  /** Sent as `Authorization: Bearer …`. */
  readonly token: string;
  readonly signal: AbortSignal;
  readonly onEvent: (event: SseEvent) => void;
  /** Connection state changes, for a live indicator. */
  readonly onState?: (state: 'connecting' | 'open' | 'closed' | 'retrying', detail?: string) => void;
  /** Ends the stream for good (no reconnect) after this event name, e.g. `end`. */
  readonly finalEvent?: string;
}

/** Error of a stream request the server refused (no reconnect). */
export class StreamRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'StreamRefusedError';
  }
}

/**
 * Follows an event stream until `finalEvent` arrives or `signal` aborts; reconnects after network
 * errors with `Last-Event-ID`, waiting the server's `retry` (default 2 s). A 4xx answer stops it.
 */
export async function followEvents(options: FollowOptions): Promise<void> {
  const parser = new SseParser();
  const { signal } = options;
  for (let attempt = 0; !signal.aborted; attempt++) {
    options.onState?.(attempt === 0 ? 'connecting' : 'retrying');
    let finished = false;
    try {
      const headers: Record<string, string> = {
        accept: 'text/event-stream',
        authorization: `Bearer ${options.token}`,
      };
      if (parser.lastEventId !== undefined) headers['last-event-id'] = parser.lastEventId;
      const response = await fetch(options.url, { headers, signal, cache: 'no-store' });
      if (response.status >= 400 && response.status < 500) {
        const text = await response.text();
        let detail = text;
        try {
          detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
        } catch {
          // not JSON: the text itself
        }
        throw new StreamRefusedError(response.status, detail);
      }
      if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
      options.onState?.('open');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) {
          options.onEvent(event);
          if (event.event === options.finalEvent) finished = true;
        }
        if (finished) {
          await reader.cancel().catch(() => undefined);
          break;
        }
      }
    } catch (error) {
      if (signal.aborted) break;
      if (error instanceof StreamRefusedError) {
        options.onState?.('closed', error.message);
        throw error;
      }
      options.onState?.('retrying', (error as Error).message);
    }
    if (finished) {
      options.onState?.('closed');
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, parser.retryMs ?? 2000);
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
  options.onState?.('closed');
}
