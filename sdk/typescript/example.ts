// Weir from TypeScript: types generated from openapi/openapi.json by openapi-typescript, calls
// through openapi-fetch. Runs against $WEIR_URL (default http://127.0.0.1:8080) with the admin token
// in $WEIR_ADMIN_TOKEN: creates a topic, produces a JSON batch and a raw body, fetches, consumes as a
// group member (join, poll, commit, leave), mints a token and uses it, creates a connector and runs
// SQL over the topic. Every step checks its answer; the script exits non-zero on the first surprise.
import createClient from "openapi-fetch";
import { randomUUID } from "node:crypto";
import type { paths } from "./generated/weir.js";

const URL = process.env.WEIR_URL ?? "http://127.0.0.1:8080";
const ADMIN = process.env.WEIR_ADMIN_TOKEN ?? "";

function check(condition: boolean, what: string): void {
  if (!condition) {
    console.error(`typescript sdk: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

function client(token: string) {
  return createClient<paths>({ baseUrl: URL, headers: { Authorization: `Bearer ${token}` } });
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

// Produce answers JSON (a batch's results) or NDJSON (one result a line, for an NDJSON stream):
// the JSON form is the one with `results`.
function batchAnswer<T extends object>(data: T | undefined): Extract<T, { results: unknown }> | undefined {
  return data !== undefined && "results" in data ? (data as Extract<T, { results: unknown }>) : undefined;
}

async function main(): Promise<void> {
  const run = randomUUID().slice(0, 8);
  const topic = `sdk-ts-${run}`;
  const group = `sdk-ts-${run}`;
  const admin = client(ADMIN);

  // A topic with two partitions.
  const created = await admin.POST("/v1/topics", { body: { name: topic, partitions: 2 } });
  check(created.data?.partitions.length === 2, "create_topic");

  // A JSON batch: a keyed record with headers, and one more, both to partition 0.
  const records = { path: { topic } };
  const batch = await admin.POST("/v1/topics/{topic}/records", {
    params: records,
    body: {
      key_format: "string",
      records: [
        { key: "customer-17", value: { order: 1, total: 25.5 }, headers: { source: "typescript" }, partition: 0 },
        { value: { order: 2, total: 7.0 }, partition: 0 },
      ],
    },
  });
  check(batchAnswer(batch.data)?.failed === 0, "produce a JSON batch");

  // A raw body: one record whose value is these bytes, key from the query string.
  const raw = await admin.POST("/v1/topics/{topic}/records", {
    params: { path: { topic }, query: { key: "raw-1", partition: 0 } },
    body: new Uint8Array([0, 1, 98, 105, 110, 97, 114, 121, 255]),
    bodySerializer: (bytes) => bytes,
    headers: { "content-type": "application/octet-stream" },
  });
  const first = batchAnswer(raw.data)?.results[0];
  check(first !== undefined && "offset" in first && first.offset === 2, "produce a raw body");

  // Fetch partition 0 from the start; the raw value comes back as base64 when asked for binary.
  const fetched = await admin.GET("/v1/topics/{topic}/partitions/{partition}/records", {
    params: { path: { topic, partition: 0 }, query: { offset: "earliest", value_format: "binary" } },
  });
  const got = fetched.data?.records ?? [];
  check(got.length === 3, "fetch_records");
  check(got[0]?.key === "customer-17" && got[0]?.headers.source === "typescript", "the key and headers as produced");
  check(got[2]?.value === "AAFiaW5hcnn/", "the raw value's bytes");

  // A consumer group member: join, poll, commit what was returned, leave.
  const joined = await admin.POST("/v1/groups/{group}/members", {
    params: { path: { group } },
    body: { topics: [topic], auto_offset_reset: "earliest" },
  });
  const member = joined.data?.member_id ?? "";
  check(joined.data?.assignment.length === 2, "join_group");
  const memberPath = { path: { group, member } };
  const polled = await admin.GET("/v1/groups/{group}/members/{member}/records", {
    params: { ...memberPath, query: { wait_ms: 2000, max_records: 100 } },
  });
  check(polled.data?.records.length === 3, "poll");
  const committed = await admin.POST("/v1/groups/{group}/members/{member}/offsets", { params: memberPath, body: {} });
  const partition0 = committed.data?.committed.find((c) => c.partition === 0);
  check(partition0?.offset === 3, "commit_offsets");
  const left = await admin.DELETE("/v1/groups/{group}/members/{member}", { params: memberPath });
  check(left.response.status === 204, "leave_group");

  // A token that may only read the topic: it fetches, and may not produce.
  const minted = await admin.POST("/v1/tokens", {
    body: {
      name: `reader-${run}`,
      expires_at: Date.now() + 3_600_000,
      permissions: [{ resource: "topic", name: topic, pattern: "literal", operations: ["read"] }],
    },
  });
  const token = minted.data?.token ?? "";
  check(token.startsWith("weir_"), "create_token");
  const reader = client(token);
  const read = await reader.GET("/v1/topics/{topic}/partitions/{partition}/records", {
    params: { path: { topic, partition: 0 }, query: { offset: "earliest" } },
  });
  check(read.data?.records.length === 3, "fetch with the minted token");
  const refused = await reader.POST("/v1/topics/{topic}/records", {
    params: records,
    body: { records: [{ value: 1 }] },
  });
  check(refused.response.status === 403 && refused.error?.code === "forbidden", "the token may not write");
  const revoked = await admin.DELETE("/v1/tokens/{id}", { params: { path: { id: minted.data?.id ?? "" } } });
  check(revoked.response.status === 204, "revoke_token");

  // A connector: a data generator writing 20 orders into a topic of its own.
  const connector = `sdk-ts-gen-${run}`;
  const made = await admin.POST("/v1/connectors", {
    body: {
      name: connector,
      config: {
        "connector.class": "DatagenConnector",
        "kafka.topic": `sdk-ts-orders-${run}`,
        quickstart: "orders",
        iterations: "20",
        "max.interval": "1",
        "random.seed": "7",
      },
    },
  });
  check(made.response.status === 201, "create_connector");
  let state = "";
  for (let i = 0; i < 100 && state !== "RUNNING"; i++) {
    const status = await admin.GET("/v1/connectors/{connector}/status", { params: { path: { connector } } });
    state = status.data?.connector.state ?? "";
    if (state !== "RUNNING") await sleep(100);
  }
  check(state === "RUNNING", "the connector runs");

  // SQL: declare the first topic as a stream and read it back with a push query.
  const stream = `sdk_ts_${run}`;
  const declared = await admin.POST("/v1/sql", {
    body: { sql: `CREATE STREAM ${stream} (total DOUBLE) WITH (topic = '${topic}');` },
  });
  check(declared.data?.results[0]?.status === "ok", "run_sql");
  const rows = await admin.POST("/v1/query", {
    body: {
      sql: `SELECT total FROM ${stream} WHERE total > 1 EMIT CHANGES LIMIT 2`,
      properties: { "auto.offset.reset": "earliest" },
    },
    parseAs: "text",
  });
  const lines = String(rows.data ?? "")
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line));
  check(rows.response.status === 200 && "header" in lines[0], "run_query: a header line");
  check(JSON.stringify(lines.slice(1, -1).map((l) => l.row.total)) === "[25.5,7]", "run_query: the rows");
  check(JSON.stringify(lines.at(-1)) === '{"end":{"reason":"limit reached"}}', "run_query: the end line");

  const dropped = await admin.POST("/v1/sql", { body: { sql: `DROP STREAM ${stream};` } });
  check(dropped.response.status === 200, "drop the stream");
  const deleted = await admin.DELETE("/v1/topics/{topic}", { params: records });
  check(deleted.response.status === 204, "delete_topic");
  console.log("typescript sdk: all steps passed");
}

await main();
