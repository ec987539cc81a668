//! A consumer-group member over a WebSocket: records pushed as they are written, commits
//! in-band, leaving by closing the socket.
mod common;

use std::time::Duration;

use common::{Server, client};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_member_receives_commits_and_leaves() {
    let s = Server::start();
    s.create_topic("ws", 2, json!({})).await;
    let url = format!(
        "{}/v1/groups/wsg/ws?topics=ws&auto_offset_reset=earliest",
        s.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "member");
    assert_eq!(hello["assignment"].as_array().unwrap().len(), 2);

    s.produce("ws", json!({"records": [{"value": "a", "partition": 0}, {"value": "b", "partition": 1}, {"value": "c", "partition": 1}]})).await;
    let mut values = Vec::new();
    while values.len() < 3 {
        let m = next_json(&mut ws).await;
        if m["type"] == "record" {
            assert!(m["id"].as_str().unwrap().contains("ws:"));
            values.push(m["record"]["value"].as_str().unwrap().to_owned());
        }
    }
    values.sort();
    assert_eq!(values, ["a", "b", "c"]);

    ws.send(Message::text(r#"{"type": "commit"}"#)).await.unwrap();
    let committed = loop {
        let m = next_json(&mut ws).await;
        if m["type"] == "committed" {
            break m;
        }
    };
    let mut offsets: Vec<(u64, u64)> = committed["committed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["partition"].as_u64().unwrap(), c["offset"].as_u64().unwrap()))
        .collect();
    offsets.sort();
    assert_eq!(offsets, [(0, 1), (1, 2)]);
    ws.send(Message::text(r#"{"type": "dance"}"#)).await.unwrap();
    let err = loop {
        let m = next_json(&mut ws).await;
        if m["type"] == "error" {
            break m;
        }
    };
    assert_eq!(err["error"]["code"], "invalid_json");

    // Closing the socket leaves the group; the commits stay.
    ws.close(None).await.unwrap();
    let mut g = Value::Null;
    for _ in 0..50 {
        g = s.get_json("/v1/groups/wsg").await;
        if g["state"] == "empty" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(g["state"], "empty", "{g}");
    let lag: u64 = g["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag"].as_u64().unwrap())
        .sum();
    assert_eq!(lag, 0);

    // A plain GET is not a WebSocket request.
    let r = client().get(s.url("/v1/groups/wsg/ws?topics=ws")).send().await.unwrap();
    common::expect_problem(r, 400, "invalid_parameter").await;
}
