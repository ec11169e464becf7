/**
 * GET|POST /v1/receivers/<kind>/<receiver id>: where providers deliver (no API key: the
 * provider's signature over the raw body authenticates, the receiver id names the
 * organization). See shared/platform/receiver.ts.
 */
import { createReceiverApp, type ReceiverKind } from "../receiver.ts";

/**
 * Every receiver kind this function serves. None yet: WhatsApp (GET verification and
 * X-Hub-Signature-256), Telegram (X-Telegram-Bot-Api-Secret-Token) and inbound email add
 * theirs here with the integrations that register them.
 */
export const RECEIVER_KINDS: ReceiverKind[] = [];

export default createReceiverApp(RECEIVER_KINDS);
