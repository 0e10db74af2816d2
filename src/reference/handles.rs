//! State handles at the reference MCP server (MCP 2026-07-28 Security Best Practices, "State
//! Handle Hijacking"): `cart_create` mints a cart id, `cart_get` takes it back as an argument.
//! The id is 128 random bits and the cart is stored for the user of the token that created it;
//! another user presenting the id gets the same answer as for an id that does not exist
//! ("reject a handle presented by any other principal", without telling that it exists). The
//! handle never authenticates: the token was checked before a tool runs.

use std::collections::HashMap;

use axum::response::Response;
use serde_json::{Value, json};

use super::{Ref, json};

pub const CREATE_TOOL: &str = "cart_create";
pub const USE_TOOL: &str = "cart_get";
pub const ARGUMENT: &str = "cart_id";

/// Carts by id, with a counter for the faulty server's sequential ids.
#[derive(Default)]
pub struct Carts {
    carts: HashMap<String, Cart>,
    seq: u64,
}

struct Cart {
    owner: Option<String>,
    items: Vec<String>,
}

/// The cart tools as a harness names them.
pub fn tools() -> super::StateHandleTools {
    super::StateHandleTools {
        create_tool: CREATE_TOOL,
        use_tool: USE_TOOL,
        argument: ARGUMENT,
        handle_pointer: format!("/structuredContent/{ARGUMENT}"),
    }
}

/// The user of an access token the resource server accepted: its grant's.
pub fn user_of(s: &Ref, token: &str) -> Option<String> {
    let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let key = if token.split('.').count() == 3 {
        st.jwt_ids.get(&super::store::jwt_id(token)?)?.clone()
    } else {
        token.to_string()
    };
    st.access.get(&key)?.user.clone()
}

fn result(id: &Value, result: Value) -> Response {
    json(200, json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

/// Runs `cart_create` / `cart_get` for an authorized request of `user`; `None` for any other
/// request.
pub fn call(s: &Ref, user: Option<&str>, body: &[u8]) -> Option<Response> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("method")?.as_str()? != "tools/call" {
        return None;
    }
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let params = v.get("params")?;
    let tool = params.get("name")?.as_str()?;
    let mut carts = s.carts.lock().unwrap_or_else(|e| e.into_inner());
    match tool {
        CREATE_TOOL => {
            if carts.carts.len() >= 10_000 {
                carts.carts.clear();
            }
            // The rs-state-handle-binding fault: a counter anyone can guess.
            let handle = if s.fault("rs-state-handle-binding") {
                carts.seq += 1;
                format!("cart-{}", carts.seq)
            } else {
                super::store::random_id(16)
            };
            let items = vec![format!("item-{}", super::store::random_id(6))];
            carts.carts.insert(
                handle.clone(),
                Cart {
                    owner: user.map(str::to_string),
                    items,
                },
            );
            Some(result(
                &id,
                json!({
                    "content": [ { "type": "text", "text": handle } ],
                    "structuredContent": { ARGUMENT: handle },
                }),
            ))
        }
        USE_TOOL => {
            let handle = params
                .get("arguments")
                .and_then(|a| a.get(ARGUMENT))
                .and_then(Value::as_str)
                .unwrap_or("");
            // Keyed by user and handle; the faulty server finds the cart by handle alone.
            let found = carts
                .carts
                .get(handle)
                .filter(|c| c.owner.as_deref() == user || s.fault("rs-state-handle-binding"));
            Some(match found {
                Some(c) => {
                    let doc = json!({ ARGUMENT: handle, "items": c.items });
                    result(
                        &id,
                        json!({
                            "content": [ { "type": "text", "text": doc.to_string() } ],
                            "structuredContent": doc,
                        }),
                    )
                }
                None => result(
                    &id,
                    json!({
                        "content": [ { "type": "text", "text": "unknown cart" } ],
                        "isError": true,
                    }),
                ),
            })
        }
        _ => None,
    }
}
