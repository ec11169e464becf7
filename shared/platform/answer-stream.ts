/**
 * An answer sent as server-sent events (`text/event-stream`): what an action's call phase
 * emits while it runs (a model's partial output), then one final event, the answer the
 * call would otherwise have returned as JSON (`result`, the success envelope) or its error
 * (`error`, the error envelope). The dispatcher (app.ts) switches to this on the first
 * emitted event; until then the answer is ordinary JSON, so a refusal before the call (a
 * 402, a 409) keeps its HTTP status.
 */

/** What {@link AnswerStream.started} resolves with. */
export const STREAMING = Symbol("streaming");

/** One event on the wire: `event: <name>` and its data as one line of JSON. */
const frame = (event: string, data: unknown) =>
  `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

export class AnswerStream {
  #queue: string[] = [];
  #final: string | null = null;
  #wake: () => void = () => {};
  #started = Promise.withResolvers<typeof STREAMING>();
  #cancel = new AbortController();

  /** Aborts when the client stops reading (it disconnected): the call should stop. */
  readonly cancelled: AbortSignal = this.#cancel.signal;
  /** Resolves with {@link STREAMING} on the first event emitted. */
  readonly started: Promise<typeof STREAMING> = this.#started.promise;

  /** Queues an event for the client; the first one makes the answer a stream. */
  emit = (event: string, data: unknown) => {
    this.#queue.push(frame(event, data));
    this.#started.resolve(STREAMING);
    this.#wake();
  };

  /**
   * The response body: the events emitted, as they come, then `final`'s event (which must
   * not reject), then the end.
   */
  body(final: Promise<{ event: "result" | "error"; data: unknown }>): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder();
    final.then(({ event, data }) => {
      this.#final = frame(event, data);
      this.#wake();
    });
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (this.#queue.length === 0 && this.#final === null) {
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
        if (this.#queue.length > 0) {
          controller.enqueue(encoder.encode(this.#queue.splice(0).join("")));
          return;
        }
        controller.enqueue(encoder.encode(this.#final!));
        controller.close();
      },
      cancel: () => this.#cancel.abort(new DOMException("The client went away.", "AbortError")),
    });
  }
}
