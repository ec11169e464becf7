/**
 * The webhooks benchmark's receivers, in a process of their own: BENCH_RECEIVER_PORTS is a
 * comma-separated list of ports, one receiver (Deno.serve, answering 200) on each. Every
 * request is noted with the receiver's index, the event's `data.seq`, the delivery id and
 * the time it arrived (epoch ms, sub-millisecond: performance.timeOrigin + now()).
 *
 * Control on PORT: GET /received returns everything noted since the last
 * `POST /reset` as JSON `[[receiver, seq, deliveryId, receivedAt], …]`; GET /count the number.
 */
type Noted = [receiver: number, seq: number, deliveryId: string, receivedAt: number];

const ports = (Deno.env.get("BENCH_RECEIVER_PORTS") ?? "").split(",").map(Number);
if (ports.length === 0 || ports.some((port) => !Number.isInteger(port) || port <= 0)) {
  throw new Error("BENCH_RECEIVER_PORTS must list the receivers' ports.");
}
let noted: Noted[] = [];
const now = () => performance.timeOrigin + performance.now();

ports.forEach((port, receiver) => {
  Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
    const receivedAt = now();
    const body = JSON.parse(await request.text());
    noted.push([receiver, body.data.seq, request.headers.get("webhook-id") ?? "", receivedAt]);
    return new Response(null, { status: 204 });
  });
});

Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT")), onListen() {} },
  (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/count") return Response.json(noted.length);
    if (path === "/received") return Response.json(noted);
    if (path === "/reset" && request.method === "POST") {
      noted = [];
      return Response.json(0);
    }
    return new Response("not found", { status: 404 });
  },
);
