// Compiled with `tsc --strict` against the types openapi-typescript generates, at its default
// options, from api/openapi.json (tests/openapi/typescript-client.sh): what a client written
// against the document must be able to send, with no cast.
import type { components, paths } from "./api";

type CreateBody = NonNullable<paths["/v1/instances/{instance}/snapshots"]["post"]["requestBody"]>["content"]["application/json"];
type RevertBody = NonNullable<paths["/v1/snapshots/{id}/revert"]["post"]["requestBody"]>["content"]["application/json"];
type EditBody = NonNullable<paths["/v1/snapshots/{id}"]["patch"]["requestBody"]>["content"]["application/json"];

// A memory snapshot with only the mode and a name; fields with defaults stay optional.
export const memory: CreateBody = { mode: "memory", name: "before-upgrade" };
export const memoryOnlyMode: components["schemas"]["CreateSnapshotRequest"] = { mode: "memory" };
export const stopped: CreateBody = { mode: "stopped", force_stop: true };
export const revertDefaults: RevertBody = {};
export const revertRunning: RevertBody = { start: "running" };
export const edit: EditBody = { display_name: "Known good" };

// The types are not vacuous: what the document forbids does not compile either.
// @ts-expect-error mode is required
export const noMode: CreateBody = { name: "x" };
// @ts-expect-error unknown mode
export const badMode: CreateBody = { mode: "frozen" };
// @ts-expect-error unknown field (additionalProperties: false)
export const extra: CreateBody = { mode: "memory", nme: "x" };
// @ts-expect-error unknown start value
export const badStart: RevertBody = { start: "later" };

type ScheduleCreateBody = NonNullable<paths["/v1/instances/{instance}/schedules"]["post"]["requestBody"]>["content"]["application/json"];
type ScheduleEditBody = NonNullable<paths["/v1/schedules/{id}"]["patch"]["requestBody"]>["content"]["application/json"];

// A schedule with only what it needs; timezone, jitter_s, enabled... keep their defaults.
export const nightly: ScheduleCreateBody = { name: "nightly", cron: "0 2 * * *", mode: "memory", keep_last: 7 };
export const weekly: components["schemas"]["CreateScheduleRequest"] = { name: "weekly", cron: "@weekly", mode: "stopped", max_age: "4w" };
export const disable: ScheduleEditBody = { enabled: false };
export const clearKeepLast: ScheduleEditBody = { keep_last: null, max_age: "14d" };
// @ts-expect-error cron is required
export const noCron: ScheduleCreateBody = { name: "x", mode: "memory", keep_last: 1 };
// @ts-expect-error only memory and stopped
export const otherMode: ScheduleCreateBody = { name: "x", cron: "@daily", mode: "other", keep_last: 1 };
// @ts-expect-error null clears only in a change
export const nullOnCreate: ScheduleCreateBody = { name: "x", cron: "@daily", mode: "memory", keep_last: null };

// An answer is typed too: a job's state is one of the documented values.
export function finished(job: components["schemas"]["Job"]): boolean {
    return job.state === "succeeded" || job.state === "failed" || job.state === "cancelled";
}

export function lastOutcome(s: components["schemas"]["Schedule"]): string {
    return s.last_run === null ? "never" : s.last_run.outcome;
}
