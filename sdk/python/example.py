"""Weir from Python, through the SDK generated from openapi/openapi.json (package `weir_client`).

Runs against a server at $WEIR_URL (default http://127.0.0.1:8080) with the admin token in
$WEIR_ADMIN_TOKEN: creates a topic, produces a JSON batch and a raw body, fetches, consumes as a
group member (join, poll, commit, leave), mints a token and uses it, creates a connector and runs
SQL over the topic. Every step checks its answer; the script exits non-zero on the first surprise.
"""

import json
import os
import sys
import time
import uuid
from io import BytesIO

from weir_client import AuthenticatedClient
from weir_client.api.connect import create_connector, get_connector_status
from weir_client.api.groups import commit_offsets, join_group, leave_group, poll
from weir_client.api.records import fetch_records, produce
from weir_client.api.streams import run_query, run_sql
from weir_client.api.tokens import create_token, revoke_token
from weir_client.api.topics import create_topic, delete_topic
from weir_client.models import (
    CommitRequest,
    CreateBody,
    CreateBodyConfig,
    CreateToken,
    CreateTopic,
    FetchResponse,
    Format,
    JoinRequest,
    NewToken,
    OffsetReset,
    Operation,
    PatternType,
    Permission,
    PollResponse,
    Problem,
    ProduceBody,
    ProduceRecord,
    ProduceRecordHeaders,
    ProduceResponse,
    QueryRequest,
    QueryRequestProperties,
    Resource,
    SqlRequest,
    SqlResponse,
    TopicDescription,
)
from weir_client.types import File

URL = os.environ.get("WEIR_URL", "http://127.0.0.1:8080")
ADMIN = os.environ["WEIR_ADMIN_TOKEN"]


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"python sdk: {what}")
    print(f"ok: {what}")


def main() -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"sdk-py-{run}", f"sdk-py-{run}"
    admin = AuthenticatedClient(base_url=URL, token=ADMIN, timeout=30.0)

    # A topic with two partitions.
    created = create_topic.sync(client=admin, body=CreateTopic(name=topic, partitions=2))
    check(isinstance(created, TopicDescription) and len(created.partitions) == 2, "create_topic")

    # A JSON batch: a keyed record with headers, and one to an explicit partition.
    headers = ProduceRecordHeaders.from_dict({"source": "python"})
    batch = ProduceBody(
        key_format=Format.STRING,
        records=[
            ProduceRecord(key="customer-17", value={"order": 1, "total": 25.5}, headers=headers, partition=0),
            ProduceRecord(value={"order": 2, "total": 7.0}, partition=0),
        ],
    )
    written = produce.sync(topic, client=admin, body=batch)
    check(isinstance(written, ProduceResponse) and written.failed == 0, "produce a JSON batch")

    # A raw body: one record whose value is these bytes, key from the query string.
    raw = File(payload=BytesIO(b"\x00\x01binary\xff"), mime_type="application/octet-stream")
    written = produce.sync(topic, client=admin, body=raw, key="raw-1", partition=0)
    check(isinstance(written, ProduceResponse) and written.results[0].offset == 2, "produce a raw body")

    # Fetch partition 0 from the start; the raw value comes back as base64 when asked for binary.
    fetched = fetch_records.sync(topic, 0, client=admin, offset="earliest", value_format=Format.BINARY)
    check(isinstance(fetched, FetchResponse) and len(fetched.records) == 3, "fetch_records")
    check(fetched.records[0].key == "customer-17", "the key as produced")
    check(fetched.records[0].headers["source"] == "python", "the headers as produced")
    check(fetched.records[2].value == "AAFiaW5hcnn/", "the raw value's bytes")

    # A consumer group member: join, poll, commit what was returned, leave.
    member = join_group.sync(
        group, client=admin, body=JoinRequest(topics=[topic], auto_offset_reset=OffsetReset.EARLIEST)
    )
    check(member is not None and not isinstance(member, Problem) and len(member.assignment) == 2, "join_group")
    polled = poll.sync(group, member.member_id, client=admin, wait_ms=2000, max_records=100)
    check(isinstance(polled, PollResponse) and len(polled.records) == 3, "poll")
    committed = commit_offsets.sync(group, member.member_id, client=admin, body=CommitRequest())
    check(
        committed is not None
        and not isinstance(committed, Problem)
        and {(c.partition, c.offset) for c in committed.committed} >= {(0, 3)},
        "commit_offsets",
    )
    left = leave_group.sync_detailed(group, member.member_id, client=admin)
    check(left.status_code == 204, "leave_group")

    # A token that may only read the topic: it fetches, and may not produce.
    minted = create_token.sync(
        client=admin,
        body=CreateToken(
            name=f"reader-{run}",
            expires_at=int(time.time() * 1000) + 3_600_000,
            permissions=[
                Permission(
                    resource=Resource.TOPIC, name=topic, pattern=PatternType.LITERAL, operations=[Operation.READ]
                )
            ],
        ),
    )
    check(isinstance(minted, NewToken) and minted.token.startswith("weir_"), "create_token")
    reader = AuthenticatedClient(base_url=URL, token=minted.token, timeout=30.0)
    read = fetch_records.sync(topic, 0, client=reader, offset="earliest")
    check(isinstance(read, FetchResponse) and len(read.records) == 3, "fetch with the minted token")
    refused = produce.sync_detailed(topic, client=reader, body=batch)
    check(refused.status_code == 403 and refused.parsed.code.value == "forbidden", "the token may not write")
    check(revoke_token.sync_detailed(minted.id, client=admin).status_code == 204, "revoke_token")

    # A connector: a data generator writing 20 orders into a topic of its own.
    connector = f"sdk-py-gen-{run}"
    gen_topic = f"sdk-py-orders-{run}"
    config = CreateBodyConfig.from_dict(
        {
            "connector.class": "DatagenConnector",
            "kafka.topic": gen_topic,
            "quickstart": "orders",
            "iterations": "20",
            "max.interval": "1",
            "random.seed": "7",
        }
    )
    made = create_connector.sync_detailed(client=admin, body=CreateBody(name=connector, config=config))
    check(made.status_code == 201, "create_connector")
    status = None
    for _ in range(100):
        status = get_connector_status.sync(connector, client=admin)
        if status is not None and status.connector.state.value == "RUNNING":
            break
        time.sleep(0.1)
    check(status is not None and status.connector.state.value == "RUNNING", "the connector runs")

    # SQL: declare the first topic as a stream and read it back with a push query.
    stream = f"sdk_py_{run}"
    declare = f"CREATE STREAM {stream} (total DOUBLE) WITH (topic = '{topic}');"
    answer = run_sql.sync(client=admin, body=SqlRequest(sql=declare))
    check(isinstance(answer, SqlResponse) and answer.results[0].status == "ok", "run_sql")
    query = QueryRequest(
        sql=f"SELECT total FROM {stream} WHERE total > 1 EMIT CHANGES LIMIT 2",
        properties=QueryRequestProperties.from_dict({"auto.offset.reset": "earliest"}),
    )
    rows = run_query.sync_detailed(client=admin, body=query)
    lines = [json.loads(line) for line in rows.content.decode().splitlines() if line]
    check(rows.status_code == 200 and "header" in lines[0], "run_query: a header line")
    check([line["row"]["total"] for line in lines[1:-1]] == [25.5, 7.0], "run_query: the rows")
    check(lines[-1] == {"end": {"reason": "limit reached"}}, "run_query: the end line")

    dropped = run_sql.sync(client=admin, body=SqlRequest(sql=f"DROP STREAM {stream};"))
    check(isinstance(dropped, SqlResponse), "drop the stream")
    check(delete_topic.sync_detailed(topic, client=admin).status_code == 204, "delete_topic")
    print("python sdk: all steps passed")


if __name__ == "__main__":
    main()
