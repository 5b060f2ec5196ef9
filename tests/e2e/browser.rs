//! A live room in real browsers: two headless Chromium sessions, driven through chromedriver,
//! each with an espeak sentence as its fake microphone. The host creates a room, records and
//! speaks; a listener raises a hand, is invited, accepts and speaks too; the listener's page
//! hears the host (WebRTC stats); the host ends the room; the recording has one track per
//! speaker whose transcript holds that speaker's sentence.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::support::*;

const HOST_SENTENCE: &str = "The new library will open in the spring.";
const GUEST_SENTENCE: &str = "That is wonderful news for everyone in our town.";

/// A WebDriver server (chromedriver or geckodriver) in a process group of its own, so the
/// browsers it starts go with it.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// chromedriver, from Debian's chromium-driver.
    pub(crate) fn start() -> Driver {
        Driver::spawn("chromedriver", "successfully on port ")
    }

    /// geckodriver, built from crates.io by `make test` (`ROOMTAPE_TEST_GECKODRIVER`).
    pub(crate) fn gecko() -> Driver {
        let program =
            std::env::var("ROOMTAPE_TEST_GECKODRIVER").unwrap_or_else(|_| "geckodriver".into());
        Driver::spawn(&program, "Listening on 127.0.0.1:")
    }

    fn spawn(program: &str, before_port: &str) -> Driver {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(program)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} must be installed (make test does it): {e}"));
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut port = None;
        for _ in 0..20 {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(p) = line.split(before_port).nth(1) {
                port = p.trim().trim_end_matches('.').parse().ok();
                break;
            }
        }
        // Keep reading its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Driver {
            child,
            port: port.unwrap_or_else(|| panic!("{program} printed its port")),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

pub(crate) async fn browser(driver: &Driver, wav: &std::path::Path) -> Client {
    session(
        driver,
        serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    format!("--use-file-for-fake-audio-capture={}", wav.display()),
                    "--autoplay-policy=no-user-gesture-required",
                ]
            }
        }),
    )
    .await
}

/// Chromium with no microphone at all: permission is granted, but there is no device, so
/// `getUserMedia` fails with `NotFoundError` (a laptop without a mic, a refused prompt).
pub(crate) async fn browser_without_mic(driver: &Driver) -> Client {
    session(
        driver,
        serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--use-fake-ui-for-media-stream",
                    "--autoplay-policy=no-user-gesture-required",
                ]
            }
        }),
    )
    .await
}

/// Headless Firefox ESR (Debian's firefox-esr): its fake microphone plays a tone.
pub(crate) async fn firefox(driver: &Driver) -> Client {
    session(
        driver,
        serde_json::json!({
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "binary": "/usr/bin/firefox-esr",
                "args": ["-headless"],
                "prefs": {
                    "media.navigator.streams.fake": true,
                    "media.navigator.permission.disabled": true,
                    "media.autoplay.default": 0,
                    "media.autoplay.blocking_policy": 0,
                    "media.peerconnection.ice.obfuscate_host_addresses": false,
                    // Dark mode, so the accessibility checks see the dark colours too.
                    "ui.systemUsesDarkTheme": 1,
                    "layout.css.prefers-color-scheme.content-override": 0,
                }
            }
        }),
    )
    .await
}

async fn session(driver: &Driver, caps: serde_json::Value) -> Client {
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// A 48 kHz mono sentence followed by silence; Chromium loops it.
fn voice(env: &Env, name: &str, text: &str, voice: &str) -> std::path::PathBuf {
    let raw = env.path(&format!("{name}-raw.wav"));
    speak(text, voice, &raw);
    let out = env.path(&format!("{name}.wav"));
    tool(
        "sox",
        &[
            "-R",
            raw.to_str().unwrap(),
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            out.to_str().unwrap(),
            "pad",
            "0.5",
            "2.5",
        ],
    );
    out
}

/// Clicks `css` once it is there. A live list (the hands, the stage) may be drawn again
/// between finding the element and clicking it; then it is found again.
async fn click(c: &Client, css: &str, what: &str) {
    let start = Instant::now();
    loop {
        match wait_for(c, css, what).await.click().await {
            Ok(_) => return,
            Err(e)
                if e.is_stale_element_reference() && start.elapsed() < Duration::from_secs(20) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("clicking {what} ({css}): {e}"),
        }
    }
}

async fn wait_for(c: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let page = c.source().await.unwrap_or_default();
            let s = state(c).await;
            panic!("waiting for {what} ({css}): {e}\nstate: {s}\npage: {page}")
        }
    }
}

async fn signup(c: &Client, base: &str, user: &str, name: &str) {
    c.goto(&format!("{base}/signup")).await.unwrap();
    fill_signup(c, user, name).await;
}

/// Fills in and sends the sign-up form on the page `c` is at; waits until logged in.
async fn fill_signup(c: &Client, user: &str, name: &str) {
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=display_name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("a long enough password")
        .await
        .unwrap();
    c.find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "form[action='/logout']", "being logged in").await;
}

async fn state(c: &Client) -> serde_json::Value {
    c.execute(
        "return window.roomtape ? window.roomtape.state() : null",
        vec![],
    )
    .await
    .unwrap()
}

async fn until(c: &Client, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let s = state(c).await;
        if f(&s) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn inbound(c: &Client) -> Vec<serde_json::Value> {
    let v = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             window.roomtape.inbound().then(done, e => done({error: String(e)}));",
            vec![],
        )
        .await
        .unwrap();
    v.as_array().cloned().unwrap_or_default()
}

/// axe-core, from the npm registry (`make test` fetches it, `ROOMTAPE_TEST_AXE`).
fn axe_source() -> &'static str {
    static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let path = std::env::var("ROOMTAPE_TEST_AXE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/roomtape/tools/axe-core-4.14.1/axe.min.js",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("axe-core at {path} (make test fetches it): {e}"))
    })
}

/// Issue 15, item 7: the page `c` shows, checked by axe-core against WCAG 2.1 A and AA (and
/// axe's best practices): no serious or critical violation, colour contrast among them.
async fn audit(c: &Client, page: &str) {
    // Injected as the script itself (not a <script> element), so the page's CSP allows it.
    let loaded = format!(
        "if (!window.axe) {{ {} }}\nreturn !!window.axe;",
        axe_source()
    );
    let ok = c.execute(&loaded, vec![]).await.unwrap();
    assert_eq!(ok, serde_json::json!(true), "axe-core loaded into {page}");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',\
               'wcag21aa', 'best-practice']}, resultTypes: ['violations']})\
             .then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => ({rule: v.id, impact: v.impact, help: v.help,\
                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' -- ' + n.failureSummary)}))),\
               e => done([{rule: 'axe failed', help: String(e)}]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        found,
        serde_json::json!([]),
        "accessibility of {page} ({}): {found:#}",
        c.current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    );
}

/// Whether the page is drawn in its dark colours.
async fn dark(c: &Client) -> bool {
    c.execute(
        "return matchMedia('(prefers-color-scheme: dark)').matches",
        vec![],
    )
    .await
    .unwrap()
        == serde_json::json!(true)
}

#[test]
fn a_live_room_in_two_browsers_is_recorded_per_speaker_and_transcribed() {
    let env = Env::new();
    let host_wav = voice(&env, "host", HOST_SENTENCE, "en-us+m3");
    let guest_wav = voice(&env, "guest", GUEST_SENTENCE, "en-us+f4");
    let (server, addr) = env.serve_with(&[
        ("ROOMTAPE_TRANSCRIBE_MODEL", &test_model()),
        ("ROOMTAPE_TRANSCRIBE_THREADS", "1"),
    ]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let recording = rt.block_on(async {
        let host = browser(&driver, &host_wav).await;
        let guest = browser(&driver, &guest_wav).await;
        let result = async {
            host.goto(&format!("{base}/signup")).await.unwrap();
            audit(&host, "the sign-up page").await;
            fill_signup(&host, "ana", "Ana Lima").await;
            audit(&host, "the lobby").await;
            host.goto(&format!("{base}/rooms/new")).await.unwrap();
            audit(&host, "the new-room form").await;
            host.find(Locator::Css("input[name=title]"))
                .await
                .unwrap()
                .send_keys("Town library")
                .await
                .unwrap();
            host.find(Locator::Css("select[name=language] option[value=en]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            host.find(Locator::Css("main form button[type=submit]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_for(&host, "#stage li.person", "the host on stage").await;
            let room_url = host.current_url().await.unwrap().to_string();
            host.find(Locator::Css("#record"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            until(&host, "recording", |s| s["recording"] == true).await;
            audit(&host, "the live room, as its host, recording").await;

            signup(&guest, &base, "bruno", "Bruno Costa").await;
            guest.goto(&room_url).await.unwrap();
            wait_for(&guest, "#audience li.person", "the guest in the audience").await;
            audit(&guest, "the live room, as a listener").await;
            assert!(
                guest
                    .find(Locator::Css("#notice"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
                    .contains("recorded"),
                "a person joining is told the room is recorded"
            );
            // The listener hears the host.
            hears(&guest, "the listener", 50.0).await;
            // Hand up, invited, accepted: on stage.
            guest
                .find(Locator::Css("#hand"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_for(&host, "#hands li button", "the raised hand").await;
            audit(&host, "the live room, as its host, with a hand raised").await;
            click(&host, "#hands li button", "the raised hand").await;
            wait_for(&guest, "#accept:not([hidden])", "the invitation").await;
            audit(&guest, "the live room, invited to speak").await;
            click(&guest, "#accept:not([hidden])", "the invitation").await;
            until(&guest, "the guest on stage", |s| s["role"] == "speaker").await;
            audit(&guest, "the live room, on stage").await;
            until(&host, "two people on stage", |s| {
                s["people"]
                    .as_array()
                    .is_some_and(|p| p.iter().filter(|x| x["role"] != "listener").count() == 2)
            })
            .await;
            // The host, heard until now, mutes while the guest speaks (the guest's sentence
            // loops): as in a real room, the guest's echo canceller then has no far end to
            // fight, which on a loaded machine could cut the guest's own words. Then the
            // host ends the room.
            click(&host, "#mute", "the host's mute button").await;
            until(&host, "the host muted", |s| s["muted"] == true).await;
            tokio::time::sleep(Duration::from_secs(9)).await;
            let host_hears = inbound(&host).await;
            assert!(
                host_hears
                    .iter()
                    .any(|s| s["packetsReceived"].as_f64().unwrap_or(0.0) > 50.0),
                "the host hears the new speaker: {host_hears:?}"
            );
            host.execute("window.confirm = () => true; return null", vec![])
                .await
                .unwrap();
            host.find(Locator::Css("#end"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            until(&guest, "the room to end", |s| s["closed"] == true).await;
            room_url
        }
        .await;
        let _ = host.close().await;
        let _ = guest.close().await;
        result
    });
    drop(driver);
    assert!(recording.contains("/rooms/"));

    // The recording: one track per speaker, transcribed by the service's worker.
    let start = Instant::now();
    let rec = loop {
        let list = env.json(&["recordings", "list"]);
        if let Some(r) = list.as_array().unwrap().first()
            && r["state"] == "transcribed"
        {
            break r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the recording was not transcribed: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    server.stop();
    assert_eq!(rec["source"], "live");
    let tracks = rec["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{rec:#}");
    let id = rec["id"].as_str().unwrap();
    for f in opus_files(&env.archive(id)) {
        assert_opusinfo_ok(&f);
    }
    let t: serde_json::Value =
        serde_json::from_str(&env.ok(&["export", id, "--format", "json"])).unwrap();
    for (name, sentence) in [("Ana Lima", HOST_SENTENCE), ("Bruno Costa", GUEST_SENTENCE)] {
        let said: Vec<&str> = t["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["speaker"] == name)
            .map(|s| s["text"].as_str().unwrap())
            .collect();
        // The sentence looped while they spoke, and segments may cut it anywhere: the best
        // window of the speaker's words, as long as the sentence (±2 words), counts.
        let words: Vec<&str> = said.iter().flat_map(|s| s.split_whitespace()).collect();
        let best = best_window_wer(sentence, &words);
        assert!(
            best <= 0.34,
            "{name} said {sentence:?}; the transcript has {said:?}"
        );
    }
}

/// Waits until `c` has received more than `packets` packets of audio with energy in it
/// (WebRTC stats).
async fn hears(c: &Client, who: &str, packets: f64) {
    let start = Instant::now();
    loop {
        let stats = inbound(c).await;
        if stats.iter().any(|s| {
            s["packetsReceived"].as_f64().unwrap_or(0.0) > packets
                && s["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0
        }) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "{who} receives no audio: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Creates a room from `/rooms/new` and returns its URL once the host is on stage.
async fn new_room(host: &Client, base: &str, title: &str, visibility: &str) -> String {
    host.goto(&format!("{base}/rooms/new")).await.unwrap();
    host.find(Locator::Css("input[name=title]"))
        .await
        .unwrap()
        .send_keys(title)
        .await
        .unwrap();
    host.find(Locator::Css(&format!(
        "input[name=visibility][value={visibility}]"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    host.find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(host, "#stage li.person", "the host on stage").await;
    host.current_url().await.unwrap().to_string()
}

/// Issue 15, items 1 and 2: a host with no microphone still runs the room and hears it
/// (listen-only, told why, muted for everyone), a guest with one speaks; when the host ends
/// the room, every open page stops (no recording sign, no host buttons) and the room's URL
/// becomes its replay, without anyone reloading by hand.
#[test]
fn a_host_without_a_microphone_hears_the_room_and_the_ended_room_becomes_its_replay() {
    let env = Env::new();
    let guest_wav = voice(&env, "guest", GUEST_SENTENCE, "en-us+f4");
    let (server, addr) = env.serve_with(&[
        ("ROOMTAPE_TRANSCRIBE_MODEL", &test_model()),
        ("ROOMTAPE_TRANSCRIBE_THREADS", "1"),
    ]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let replay = rt.block_on(async {
        let host = browser_without_mic(&driver).await;
        let guest = browser(&driver, &guest_wav).await;
        let result = async {
            signup(&host, &base, "mira", "Mira Sol").await;
            let room_url = new_room(&host, &base, "No mic today", "private").await;
            let invite = wait_for(&host, "#invite-link", "the private invite link")
                .await
                .text()
                .await
                .unwrap();
            until(&host, "listen-only", |s| {
                s["noMic"] == true && s["muted"] == true
            })
            .await;
            let notice = wait_for(&host, "#notice", "the notice")
                .await
                .text()
                .await
                .unwrap();
            assert!(
                notice.contains("No microphone") && notice.contains("You can listen"),
                "{notice}"
            );
            assert!(
                !notice.contains("Something went wrong"),
                "a missing microphone is not an error: {notice}"
            );
            audit(&host, "the live room of a host without a microphone").await;
            click(&host, "#record", "start recording").await;
            until(&host, "recording", |s| s["recording"] == true).await;
            let sign = wait_for(&host, "#recording-indicator", "the recording sign").await;
            assert!(sign.text().await.unwrap().contains("being recorded"));

            // Issue 15, item 3: the invite link, opened signed out, leads to a log-in page that
            // names the room, whose "Sign up" keeps the link: the new account lands in the room.
            guest.goto(&format!("{base}{invite}")).await.unwrap();
            let lead = wait_for(&guest, "#destination", "where the log-in leads")
                .await
                .text()
                .await
                .unwrap();
            assert!(lead.contains("No mic today"), "{lead}");
            audit(&guest, "the log-in page, leading to a room").await;
            click(&guest, "main a[href^='/signup']", "sign up").await;
            wait_for(&guest, "input[name=username]", "the sign-up form").await;
            audit(&guest, "the sign-up page, leading to a room").await;
            fill_signup(&guest, "teo", "Teo Park").await;
            wait_for(&guest, "#audience li.person", "the guest in the audience").await;
            let landed = guest.current_url().await.unwrap().to_string();
            assert_eq!(landed, format!("{base}{invite}"), "back at the invite link");
            click(&guest, "#hand", "raise hand").await;
            click(&host, "#hands li button", "the raised hand").await;
            click(&guest, "#accept:not([hidden])", "the invitation").await;
            until(&guest, "the guest on stage", |s| s["role"] == "speaker").await;
            // The host, with no microphone, hears the guest.
            hears(&host, "the host without a microphone", 50.0).await;
            // The others see the host as muted, not as silent by mistake.
            until(&guest, "the host shown muted", |s| {
                s["people"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x["role"] == "host" && x["muted"] == true))
            })
            .await;
            tokio::time::sleep(Duration::from_secs(3)).await;

            host.execute("window.confirm = () => true; return null", vec![])
                .await
                .unwrap();
            click(&host, "#end", "end room").await;
            until(&guest, "the room to end", |s| {
                s["ended"] == true && s["recording"] == false
            })
            .await;
            let hidden: bool = guest
                .execute(
                    "return document.getElementById('recording-indicator').hidden \
                     && document.getElementById('hand').hidden",
                    vec![],
                )
                .await
                .unwrap()
                .as_bool()
                .unwrap();
            assert!(
                hidden,
                "an ended room shows no recording sign and no controls"
            );
            // Both pages move to the replay by themselves.
            for (c, who) in [(&guest, "guest"), (&host, "host")] {
                moves_to_replay(c, who).await;
            }
            let replay = guest.current_url().await.unwrap().to_string();
            assert_eq!(replay, host.current_url().await.unwrap().to_string());
            // Item 5: the replay says where the transcript stands, and shows it once it is
            // ready, with nobody reloading.
            let start = Instant::now();
            let mut said = Vec::new();
            loop {
                let status = guest
                    .execute(
                        "const e = document.getElementById('transcript-status'); \
                         return e ? e.textContent : null",
                        vec![],
                    )
                    .await
                    .unwrap();
                if let Some(t) = status.as_str() {
                    if said.is_empty() {
                        audit(&guest, "the replay, waiting for its transcript").await;
                    }
                    said.push(t.to_string());
                } else if guest.find(Locator::Css("li.line")).await.is_ok() {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(90),
                    "no transcript appeared; the page said {said:?}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            assert!(
                said.iter()
                    .all(|t| !t.is_empty() && !t.contains("No transcript yet")),
                "{said:?}"
            );
            let words = guest
                .find(Locator::Css("#transcript"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .to_lowercase();
            assert!(
                ["wonderful", "news", "everyone", "town"]
                    .iter()
                    .any(|w| words.contains(w)),
                "the guest's sentence: {words}"
            );
            audit(&guest, "the replay").await;
            // Space plays and pauses, as in other players.
            let paused = "return document.getElementById('player').paused";
            for (press, playing) in [(1, true), (2, false)] {
                guest
                    .find(Locator::Css("h1"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
                guest
                    .find(Locator::Css("body"))
                    .await
                    .unwrap()
                    .send_keys(" ")
                    .await
                    .unwrap();
                let start = Instant::now();
                while guest.execute(paused, vec![]).await.unwrap() != serde_json::json!(!playing) {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "Space (press {press}) should leave the replay {}",
                        if playing { "playing" } else { "paused" }
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // Its host's pages: the replay with its tools, corrections, the lists, search,
            // tokens and webhooks.
            wait_for(&host, "li.line", "the transcript on the host's page").await;
            audit(&host, "the replay, as its host").await;
            let id = replay.rsplit("/r/").next().unwrap().to_string();
            for (path, what) in [
                (format!("/r/{id}/edit"), "the corrections page"),
                ("/replays".to_string(), "the replays"),
                ("/search?q=news".to_string(), "search results"),
                ("/search?q=zzzqqq".to_string(), "a search with no hits"),
                ("/tokens".to_string(), "the API tokens page"),
                ("/webhooks".to_string(), "the webhooks page"),
                ("/".to_string(), "the lobby, after the room"),
            ] {
                host.goto(&format!("{base}{path}")).await.unwrap();
                audit(&host, what).await;
            }
            // The room link itself leads there from now on.
            guest.goto(&room_url).await.unwrap();
            let again = guest.current_url().await.unwrap().to_string();
            assert_eq!(again, replay, "the room's URL is its replay");
            (room_url, replay)
        }
        .await;
        let _ = host.close().await;
        let _ = guest.close().await;
        result
    });
    drop(driver);
    let (room_url, replay) = replay;
    // Never cached: a browser that saw the live room does not keep showing it.
    let path = room_url.trim_start_matches(&base);
    let r = http(&addr, "GET", path, &[], b"");
    assert_eq!(
        r.status, 303,
        "anonymous: to log in, the room and its replay being private"
    );
    let id = replay.rsplit("/r/").next().unwrap().to_string();
    env.ok(&["recordings", "publish", &id, "--visibility", "public"]);
    let r = http(&addr, "GET", path, &[], b"");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some(format!("/r/{id}").as_str()));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    server.stop();
}

/// Waits until the page `c` shows has moved (by itself) to a replay.
async fn moves_to_replay(c: &Client, who: &str) {
    let start = Instant::now();
    loop {
        let url = c.current_url().await.unwrap().to_string();
        if url.contains("/r/") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the {who}'s page stayed at {url}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Whether the page is wider than the window (something would need sideways scrolling).
async fn overflows(c: &Client) -> serde_json::Value {
    c.execute(
        "const w = document.documentElement.clientWidth;\
         const wide = [...document.querySelectorAll('body *')]\
           .filter(e => e.getBoundingClientRect().right > w + 1)\
           .map(e => e.tagName + (e.id ? '#' + e.id : ''));\
         return document.documentElement.scrollWidth > w ? wide : null;",
        vec![],
    )
    .await
    .unwrap()
}

async fn assert_fits(c: &Client, page: &str) {
    let o = overflows(c).await;
    assert!(o.is_null(), "{page} is wider than a phone's screen: {o}");
}

#[test]
fn a_firefox_listener_on_a_phone_sized_screen_hears_takes_the_stage_and_is_recorded() {
    let env = Env::new();
    let host_wav = voice(&env, "host", HOST_SENTENCE, "en-us+m3");
    let (server, addr) = env.serve_with(&[
        ("ROOMTAPE_TRANSCRIBE_MODEL", &test_model()),
        ("ROOMTAPE_TRANSCRIBE_THREADS", "1"),
        // Firefox will not send media to a loopback address: the service listens on every
        // address and advertises this machine's own (its default, as in production).
        ("ROOMTAPE_MEDIA_LISTEN", "0.0.0.0:0"),
        ("ROOMTAPE_MEDIA_ADVERTISE", ""),
    ]);
    let base = format!("http://{addr}");
    let chrome = Driver::start();
    let gecko = Driver::gecko();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let host = browser(&chrome, &host_wav).await;
        let guest = firefox(&gecko).await;
        let result = async {
            // A phone: 390 × 844 CSS pixels.
            guest.set_window_size(390, 844).await.unwrap();
            signup(&host, &base, "ana", "Ana Lima").await;
            host.goto(&format!("{base}/rooms/new")).await.unwrap();
            host.find(Locator::Css("input[name=title]"))
                .await
                .unwrap()
                .send_keys("A room with a rather long title that has to wrap on a phone")
                .await
                .unwrap();
            host.find(Locator::Css("main form button[type=submit]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_for(&host, "#stage li.person", "the host on stage").await;
            let room_url = host.current_url().await.unwrap().to_string();
            host.find(Locator::Css("#record"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            until(&host, "recording", |s| s["recording"] == true).await;

            // Issue 15, item 3: the room link, opened with no account, is heard at once (a
            // public room), listen only.
            guest.goto(&room_url).await.unwrap();
            wait_for(&guest, "#audience li.person", "the guest in the audience").await;
            assert_fits(&guest, "the room page").await;
            assert!(dark(&guest).await, "Firefox draws the pages dark");
            audit(&guest, "the live room, as a guest, dark, on a phone").await;
            until(&guest, "listening as a guest", |s| s["role"] == "listener").await;
            hears(&guest, "Firefox, listening without an account,", 50.0).await;
            // Raising a hand asks them to sign in, and signing up comes back to the room.
            let hand = wait_for(&guest, "#hand", "the hand").await;
            assert!(hand.text().await.unwrap().contains("Sign in"));
            hand.click().await.unwrap();
            let lead = wait_for(&guest, "#destination", "where the log-in leads")
                .await
                .text()
                .await
                .unwrap();
            assert!(lead.contains("rather long title"), "{lead}");
            audit(&guest, "the log-in page, dark, on a phone").await;
            click(&guest, "main a[href^='/signup']", "sign up").await;
            fill_signup(&guest, "bruno", "Bruno Costa").await;
            wait_for(&guest, "#audience li.person", "the guest in the audience").await;
            audit(&guest, "the live room, as a listener, dark, on a phone").await;
            assert_eq!(guest.current_url().await.unwrap().to_string(), room_url);
            assert!(
                guest
                    .find(Locator::Css("#notice"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
                    .contains("recorded"),
                "a person joining is told the room is recorded"
            );
            // Firefox hears the host.
            let start = Instant::now();
            loop {
                let stats = inbound(&guest).await;
                if stats.iter().any(|s| {
                    s["packetsReceived"].as_f64().unwrap_or(0.0) > 50.0
                        && s["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0
                }) {
                    break;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    let s = state(&guest).await;
                    let page = guest.source().await.unwrap_or_default();
                    panic!("Firefox receives no audio: {stats:?}\nstate: {s}\npage: {page}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // Hand up (a tap on a phone-sized page), invited, accepted: Firefox publishes.
            guest
                .find(Locator::Css("#hand"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            click(&host, "#hands li button", "the raised hand").await;
            click(&guest, "#accept:not([hidden])", "the invitation").await;
            until(&guest, "the guest on stage", |s| s["role"] == "speaker").await;
            assert_fits(&guest, "the room page with its speaker controls").await;
            audit(&guest, "the live room, on stage, dark, on a phone").await;
            hears(&host, "Chromium, from Firefox,", 100.0).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            host.execute("window.confirm = () => true; return null", vec![])
                .await
                .unwrap();
            host.find(Locator::Css("#end"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            until(&guest, "the room to end", |s| s["closed"] == true).await;
            // The ended room becomes its replay, which reads as well in the dark.
            moves_to_replay(&guest, "Firefox listener").await;
            wait_for(&guest, "#replay", "the replay").await;
            assert_fits(&guest, "the replay").await;
            audit(&guest, "the replay, dark, on a phone").await;
            guest.goto(&format!("{base}/replays")).await.unwrap();
            audit(&guest, "the replays, dark, on a phone").await;
        }
        .await;
        let _ = host.close().await;
        let _ = guest.close().await;
        result
    });
    drop(gecko);
    drop(chrome);

    // One track per speaker, Firefox's among them, each a valid Ogg Opus file with seconds of
    // audio.
    let start = Instant::now();
    let rec = loop {
        let list = env.json(&["recordings", "list"]);
        if let Some(r) = list.as_array().unwrap().first()
            && r["state"] != "recording"
        {
            break r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the recording did not finish: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    server.stop();
    assert_ne!(rec["state"], "failed", "{rec:#}");
    let tracks = rec["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{rec:#}");
    let names: Vec<&str> = tracks
        .iter()
        .filter_map(|t| t["speaker"]["name"].as_str())
        .collect();
    assert!(names.contains(&"Bruno Costa"), "{rec:#}");
    let id = rec["id"].as_str().unwrap();
    let files = opus_files(&env.archive(id));
    assert!(files.len() >= 2, "{files:?}");
    let scratch = env.path("decoded");
    std::fs::create_dir_all(&scratch).unwrap();
    for f in &files {
        assert_opusinfo_ok(f);
        let secs = opusdec_seconds(f, &scratch);
        assert!(secs > 2.0, "{} holds {secs} s", f.display());
    }
}

/// The best word error rate of `sentence` against any run of `words` about as long as it (a
/// looping sentence can be cut anywhere).
fn best_window_wer(sentence: &str, words: &[&str]) -> f64 {
    let n = sentence.split_whitespace().count();
    let mut best = f64::INFINITY;
    for start in 0..words.len() {
        for len in n.saturating_sub(2)..=n + 2 {
            if len == 0 || start + len > words.len() {
                continue;
            }
            best = best.min(wer(sentence, &words[start..start + len].join(" ")));
        }
    }
    best
}

/// Follows a room's captions over `GET /api/v1/rooms/{id}/captions` (as a guest) on a thread
/// of its own; each SSE event comes out as (event, data).
fn follow_captions(
    addr: &str,
    room: &str,
) -> std::sync::mpsc::Receiver<(String, serde_json::Value)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /api/v1/rooms/{room}/captions HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { return };
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let v = serde_json::from_str(d).unwrap_or(serde_json::Value::Null);
                if tx.send((std::mem::take(&mut event), v)).is_err() {
                    return;
                }
            } else if line.starts_with("HTTP/1.1 ") && !line.contains(" 200 ") {
                let _ = tx.send(("status".into(), serde_json::json!(line)));
                return;
            }
        }
    });
    rx
}

/// Issue 18: a listener with captions on sees what the host says, with the host's name, a few
/// seconds after it is said; an API consumer's SSE stream carries the same final captions; the
/// room is not recorded, and no audio reaches the disk.
#[test]
fn a_listener_with_captions_on_reads_the_hosts_sentence_with_the_hosts_name() {
    let env = Env::new();
    let host_wav = voice(&env, "host", HOST_SENTENCE, "en-us+m3");
    let (server, addr) = env.serve_with(&[
        ("ROOMTAPE_CAPTIONS_MODEL", &test_model()),
        ("ROOMTAPE_CAPTIONS_THREADS", "1"),
    ]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (line, lag, sse) = rt.block_on(async {
        let host = browser(&driver, &host_wav).await;
        let listener = browser_without_mic(&driver).await;
        let result = async {
            signup(&host, &base, "ana", "Ana Lima").await;
            let room_url = new_room(&host, &base, "Library news", "public").await;
            let room = room_url.rsplit('/').next().unwrap().to_string();
            // Its host offers captions: the switch says so.
            wait_for(
                &host,
                "#captions-allow:not([hidden])",
                "the host's captions switch",
            )
            .await;
            let sse = follow_captions(&addr, &room);
            let (first, data) = sse.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(
                (first.as_str(), &data["captions"]),
                ("state", &serde_json::json!("on"))
            );

            // A guest listener turns captions on.
            listener.goto(&room_url).await.unwrap();
            wait_for(
                &listener,
                "#audience li.person",
                "the listener in the audience",
            )
            .await;
            hears(&listener, "the listener", 50.0).await;
            click(
                &listener,
                "#captions-toggle:not([hidden])",
                "the captions toggle",
            )
            .await;
            wait_for(&listener, "#captions:not([hidden])", "the captions panel").await;
            audit(&listener, "the live room, with captions on").await;
            let on = Instant::now();
            // The sentence loops (3 s of speech, 3 s of silence): it is on screen within a
            // few seconds of its next saying.
            let line = loop {
                let s = state(&listener).await;
                let found = s["lines"].as_array().and_then(|ls| {
                    ls.iter().find(|l| {
                        let text = l["text"].as_str().unwrap_or("");
                        let words: Vec<&str> = text.split_whitespace().collect();
                        l["name"] == "Ana Lima" && best_window_wer(HOST_SENTENCE, &words) <= 0.25
                    })
                });
                if let Some(l) = found {
                    break l.clone();
                }
                assert!(
                    on.elapsed() < Duration::from_secs(30),
                    "no caption of the host's sentence after 30 s: {s}\nlog: {}",
                    std::fs::read_to_string(env.path("serve.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let lag = on.elapsed();
            // The live region holds it, under the speaker's name.
            let shown = listener
                .find(Locator::Css("#captions[aria-live=polite] .line"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(shown.starts_with("Ana Lima: "), "{shown:?}");
            host.execute("window.confirm = () => true; return null", vec![])
                .await
                .unwrap();
            click(&host, "#end", "the end button").await;
            until(&listener, "the room to end", |s| s["closed"] == true).await;
            (line, lag, sse)
        }
        .await;
        let _ = host.close().await;
        let _ = listener.close().await;
        result
    });
    drop(driver);
    eprintln!(
        "caption on screen {:.1} s after captions were turned on",
        lag.as_secs_f64()
    );
    // The SSE stream: the same finals, under the host's name, and its end.
    let mut finals = Vec::new();
    let mut ended = false;
    while let Ok((event, data)) = sse.recv_timeout(Duration::from_secs(10)) {
        match event.as_str() {
            "caption" if data["kind"] == "final" => {
                assert_eq!(data["speaker"]["name"], "Ana Lima", "{data}");
                assert!(
                    data["end_ms"].as_i64() >= data["start_ms"].as_i64(),
                    "{data}"
                );
                finals.push(data["text"].as_str().unwrap().to_string());
            }
            "ended" => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    assert!(ended, "the stream says the room ended");
    let all = finals.join(" ");
    let text = line["text"].as_str().unwrap();
    assert!(
        all.contains(text),
        "the page's line {text:?} is in the SSE finals {finals:?}"
    );
    // Not recorded: no archive, nothing of the room's audio on disk.
    let archives = env.data().join("archives");
    let files = std::fs::read_dir(&archives).map_or(0, |d| d.count());
    assert_eq!(files, 0, "audio under {}", archives.display());
    server.stop();
}
