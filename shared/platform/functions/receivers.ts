/**
 * GET|POST /v1/receivers/<kind>/<receiver id>: where providers deliver (no API key: the
 * provider's signature over the raw body authenticates, the receiver id names the
 * organization). See shared/platform/receiver.ts.
 */
import { channelReceiverKinds } from "../../messages/channels.ts";
import { createReceiverApp, type ReceiverKind } from "../receiver.ts";

/**
 * Every receiver kind this function serves: the messaging channels' (WhatsApp's GET
 * verification and X-Hub-Signature-256, Telegram's X-Telegram-Bot-Api-Secret-Token, inbound
 * email's signed relay), from the channels registry.
 */
export const RECEIVER_KINDS: ReceiverKind[] = channelReceiverKinds();

export default createReceiverApp(RECEIVER_KINDS);
