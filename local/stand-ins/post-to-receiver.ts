/**
 * How a stand-in delivers to one of the stack's receivers, as its provider would: a signed
 * JSON POST (the signature header is the caller's), answered with the receiver's status and
 * body (parsed when it is JSON). A receiver that cannot be reached is status null and the
 * error, for the stand-in's record.
 */
export async function postToReceiver(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number | null; answer: unknown }> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    const text = await response.text();
    try {
      return { status: response.status, answer: JSON.parse(text) };
    } catch {
      return { status: response.status, answer: text };
    }
  } catch (error) {
    return { status: null, answer: { error: String(error) } };
  }
}
