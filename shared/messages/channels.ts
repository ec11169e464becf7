/**
 * The channels messages go through, in one place: `messages/send` and `integrations/*` find
 * a channel here by name, and the receivers function serves their receiver kinds. Each
 * channel is its own module in channels/ (the contract is channel.ts).
 */
import type { Channel, ChannelName } from "./channel.ts";
import { email } from "./channels/email.ts";
import { telegram } from "./channels/telegram.ts";
import { whatsapp } from "./channels/whatsapp.ts";
import type { ReceiverKind } from "../platform/receiver.ts";

/** A channel of any credentials: the registry hands each one its own, opened from its row. */
// deno-lint-ignore no-explicit-any
export type AnyChannel = Channel<any, any>;

export const CHANNEL_MODULES: Record<ChannelName, AnyChannel> = { whatsapp, telegram, email };

export const channelOf = (name: ChannelName): AnyChannel => CHANNEL_MODULES[name];

/** The receiver kinds of the channels that take inbound traffic. */
export const CHANNEL_RECEIVER_KINDS: ReceiverKind[] = Object.values(CHANNEL_MODULES)
  .flatMap((channel) => channel.receiverKind ? [channel.receiverKind] : []);
