//! `Request::extensions`: values one handler of a call leaves for the next (pre → main →
//! post → final), like the reference's `Request.Context`; each call starts empty.

use std::time::Duration;

use kite::{Config, Kite, Request};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct User(String);

#[tokio::test]
async fn handlers_of_one_call_share_extensions() {
    let config = || Config {
        ip: "127.0.0.1".into(),
        ..Config::default()
    };
    let k = Kite::with_config("ext", "1.0.0", config()).unwrap();
    k.add_method(
        kite::Method::new("whoami", |req: Request| async move {
            Ok::<_, kite::KiteError>(req.extensions().get::<User>().map(|u| u.0.clone()))
        })
        .disable_authentication()
        .pre_handle(|req: Request| async move {
            req.extensions().insert(User("alice".into()));
            Ok::<_, kite::KiteError>(Value::Null)
        })
        .final_func(|req: Request, result, error| async move {
            let seen = req.extensions().get::<User>().is_some();
            (result.map(|r| json!([r, seen])), error)
        }),
    )
    .unwrap();
    k.add_method(
        kite::Method::new("fresh", |req: Request| async move {
            Ok::<_, kite::KiteError>(req.extensions().get::<User>().is_none())
        })
        .disable_authentication(),
    )
    .unwrap();
    tokio::time::timeout(WAIT, k.listen())
        .await
        .unwrap()
        .unwrap();
    let caller = Kite::with_config("caller", "1.0.0", config()).unwrap();
    let c = caller.client(&k.url().unwrap());
    tokio::time::timeout(WAIT, c.dial()).await.unwrap().unwrap();
    for _ in 0..2 {
        let r = tokio::time::timeout(WAIT, c.call("whoami", ()))
            .await
            .unwrap();
        assert_eq!(r.unwrap(), json!(["alice", true]));
    }
    let r = tokio::time::timeout(WAIT, c.call("fresh", ()))
        .await
        .unwrap();
    assert_eq!(r.unwrap(), json!(true));
    c.close();
    k.close();
}
