//! The SFU engine under hostile input: datagrams of any shape from strangers and from
//! addresses peers use, garbage SDP answers, and stage changes, leaves and rejoins in any
//! order, on a clock the input moves. It must never panic, and what it holds must be
//! consistent at the end (no timer or address left for a peer that is gone).

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roomtape_sfu::{Command, Forwarding, Input, Output, Sfu};

fn drain(sfu: &mut Sfu<u8>) {
    while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let forwarding = if data.first().is_some_and(|b| b & 1 == 1) {
        Forwarding::Str0m
    } else {
        Forwarding::Sealed
    };
    let mut sfu = Sfu::new(server, forwarding, now).expect("an engine");
    let sources: [SocketAddr; 3] = [
        "10.0.1.1:4000".parse().unwrap(),
        "10.0.1.2:4000".parse().unwrap(),
        "192.0.2.9:666".parse().unwrap(),
    ];
    for conn in 1..=2u64 {
        let join = Command::Join {
            conn,
            room: 1,
            stream: format!("s{conn}"),
            publish: conn == 1,
        };
        sfu.handle_input(Input::Command(join), now);
        drain(&mut sfu);
    }
    // Chunks: an op byte, a length byte, that many bytes.
    let mut rest = data.get(1..).unwrap_or_default();
    while let [op, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        let conn = u64::from(op >> 4) % 3 + 1;
        match op & 0x0f {
            0..=7 => sfu.handle_input(
                Input::Datagram {
                    source: sources[usize::from(op & 0x0f) % 3],
                    contents: body,
                },
                now,
            ),
            8 => {
                let sdp = String::from_utf8_lossy(body).into_owned();
                sfu.handle_input(Input::Command(Command::Answer { conn, sdp }), now);
            }
            9 => sfu.handle_input(
                Input::Command(Command::SetPublish {
                    conn,
                    publish: body.first().is_some_and(|b| b & 1 == 1),
                }),
                now,
            ),
            10 => sfu.handle_input(
                Input::Command(Command::SetForward {
                    conn,
                    forward: body.first().is_some_and(|b| b & 1 == 1),
                }),
                now,
            ),
            11 => sfu.handle_input(Input::Command(Command::Leave { conn }), now),
            12 => sfu.handle_input(
                Input::Command(Command::Join {
                    conn,
                    room: body.first().copied().unwrap_or(1) % 2,
                    stream: String::from_utf8_lossy(body).into_owned(),
                    publish: body.len() % 2 == 0,
                }),
                now,
            ),
            13 => sfu.handle_input(
                Input::Command(Command::Audio {
                    room: 1,
                    on: body.first().is_some_and(|b| b & 1 == 1),
                }),
                now,
            ),
            _ => {
                let ms = body.iter().map(|b| u64::from(*b)).sum::<u64>() * 50;
                now += Duration::from_millis(ms);
                sfu.handle_input(Input::Timeout, now);
            }
        }
        drain(&mut sfu);
    }
    // Past every timeout: whoever never connected is gone, and nothing of them stays.
    now += roomtape_sfu::CONNECT_TIMEOUT + Duration::from_secs(60);
    sfu.handle_input(Input::Timeout, now);
    drain(&mut sfu);
    let s = sfu.stats();
    assert_eq!(s.peers, 0, "{s:?}");
    assert_eq!((s.rooms, s.audio_rooms, s.timers, s.addresses), (0, 0, 0, 0), "{s:?}");
});
