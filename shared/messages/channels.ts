/**
 * The channels messages go through, in one place: `messages/send` and `integrations/*` find
 * a channel here by name, and the receivers function serves their receiver kinds. Each
 * channel is its own module in channels/ (the contract is channel.ts).
 *
 * Read through functions, not module-level constants: the channel modules import
 * inbound.ts → messages.ts → this module, so when a channel module is loaded first (its
 * unit tests) this module runs before that channel is initialised.
 */
import type { ReceiverKind } from "../platform/receiver.ts";
import type { Channel, ChannelName } from "./channel.ts";
import { email } from "./channels/email.ts";
import { telegram } from "./channels/telegram.ts";
import { whatsapp } from "./channels/whatsapp.ts";

/** A channel of any credentials: the registry hands each one its own, opened from its row. */
// deno-lint-ignore no-explicit-any
export type AnyChannel = Channel<any, any>;

/** Every channel by name. */
export const channelModules = (): Record<ChannelName, AnyChannel> => ({
  whatsapp,
  telegram,
  email,
});

export const channelOf = (name: ChannelName): AnyChannel => channelModules()[name];

/** The receiver kinds of the channels that take inbound traffic. */
export const channelReceiverKinds = (): ReceiverKind[] =>
  Object.values(channelModules()).flatMap((channel) =>
    channel.receiverKind ? [channel.receiverKind] : []
  );
