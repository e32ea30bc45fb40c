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

// An answer is typed too: a job's state is one of the documented values.
export function finished(job: components["schemas"]["Job"]): boolean {
    return job.state === "succeeded" || job.state === "failed" || job.state === "cancelled";
}
