/**
 * What the calendar sends by email itself: invitations (with an iCalendar attachment) for
 * events not synced to Google, and `email` reminders. Both go through the organization's
 * email integration with the messages group's own three phases (shared/messages/messages.ts:
 * prepareSend → callSend → recordSend), one message per attendee, so each is stored in
 * public.messages like any other (sandbox: simulated). Without an email integration in the
 * environment nothing is sent and callers record EMAIL_CHANNEL_UNAVAILABLE.
 */
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { callSend, type PreparedSend, prepareSend, recordSend } from "../messages/messages.ts";
import { sendInput } from "../messages/schemas.ts";
import { atOffset, type EventRow } from "./events.ts";

export const EMAIL_CHANNEL_UNAVAILABLE = "email channel not available";

export interface CalendarEmail {
  to: string[];
  subject: string;
  text: string;
  /** Made once the sender is known (the invitation's organizer is the from address). */
  attachments?: (
    from: string,
  ) => { filename: string; contentType: string; content: Uint8Array }[];
}

/**
 * Phase 1 (in the transaction): one queued message per recipient through the email
 * integration, or null when the environment has none.
 */
export async function prepareEmails(
  tx: Tx,
  email: CalendarEmail,
  environment: Environment,
): Promise<PreparedSend[] | null> {
  const [integration] = await tx`
    select 1 from public.integrations where provider = 'email' and status <> 'disconnected'
  `;
  if (!integration) return null;
  const prepared: PreparedSend[] = [];
  for (const to of email.to) {
    const send = await prepareSend(
      tx,
      sendInput.parse({
        channel: "email",
        to,
        message: { subject: email.subject, body: email.text },
      }),
      { environment },
    );
    if (email.attachments) send.outbound.attachments = email.attachments(send.fromShown);
    prepared.push(send);
  }
  return prepared;
}

export type EmailOutcome = { ok: true; value: Awaited<ReturnType<typeof callSend>> } | {
  ok: false;
  error: unknown;
};

/** Phase 2 (no transaction): the sends. */
export async function sendEmails(
  prepared: PreparedSend[],
  signal?: AbortSignal,
): Promise<EmailOutcome[]> {
  const outcomes: EmailOutcome[] = [];
  for (const send of prepared) {
    try {
      outcomes.push({ ok: true, value: await callSend(send, { signal }) });
    } catch (error) {
      outcomes.push({ ok: false, error });
    }
  }
  return outcomes;
}

/** Phase 3: each message sent or failed; the first refusal's message, or null when all went. */
export async function recordEmails(
  tx: Tx,
  prepared: PreparedSend[],
  outcomes: EmailOutcome[],
): Promise<string | null> {
  let failure: string | null = null;
  for (const [i, send] of prepared.entries()) {
    const recorded = await recordSend(tx, send, outcomes[i]);
    if (!recorded.ok) failure ??= recorded.error.message;
  }
  return failure;
}

/** iCalendar text: escapes per RFC 5545 §3.3.11, lines folded at 75 octets. */
const icsText = (value: string) =>
  value.replace(/\\/g, "\\\\").replace(/;/g, "\\;").replace(/,/g, "\\,").replace(/\r?\n/g, "\\n");
const icsTime = (instant: Date) => instant.toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
function fold(line: string) {
  const parts: string[] = [];
  for (let rest = line; rest.length > 0; rest = rest.slice(73)) parts.push(rest.slice(0, 73));
  return parts.join("\r\n ");
}

/** The invitation (METHOD:REQUEST) for an event, as an .ics file. */
export function icsInvitation(row: EventRow, organizer: string): string {
  const lines = [
    "BEGIN:VCALENDAR",
    "VERSION:2.0",
    "PRODID:-//BiVelio//Calendar//EN",
    "METHOD:REQUEST",
    "BEGIN:VEVENT",
    `UID:${row.id}@bivelio`,
    `DTSTAMP:${icsTime(new Date())}`,
    `DTSTART:${icsTime(row.start_at)}`,
    `DTEND:${icsTime(row.end_at)}`,
    `SUMMARY:${icsText(row.title)}`,
    ...(row.description ? [`DESCRIPTION:${icsText(row.description)}`] : []),
    ...(row.location ? [`LOCATION:${icsText(row.location)}`] : []),
    `ORGANIZER:mailto:${organizer}`,
    ...row.attendees.map((a) => `ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:${a.email}`),
    `STATUS:${row.status === "cancelled" ? "CANCELLED" : "CONFIRMED"}`,
    "END:VEVENT",
    "END:VCALENDAR",
  ];
  return lines.map(fold).join("\r\n") + "\r\n";
}

export function invitationEmail(row: EventRow): CalendarEmail {
  return {
    to: row.attendees.map((a) => a.email),
    subject: `Invitation: ${row.title}`,
    text: `${row.title}\n${atOffset(row.start_at, row.start_offset)} – ${
      atOffset(row.end_at, row.end_offset)
    }${row.location ? `\n${row.location}` : ""}${row.description ? `\n\n${row.description}` : ""}`,
    attachments: (from) => [{
      filename: "invite.ics",
      contentType: "text/calendar; method=REQUEST; charset=utf-8",
      content: new TextEncoder().encode(icsInvitation(row, from)),
    }],
  };
}

export function reminderEmail(row: EventRow, minutesBefore: number): CalendarEmail {
  return {
    to: row.attendees.map((a) => a.email),
    subject: `Reminder: ${row.title} in ${minutesBefore} minutes`,
    text: `${row.title} starts at ${atOffset(row.start_at, row.start_offset)}${
      row.location ? ` (${row.location})` : ""
    }.`,
  };
}
