//! End-to-end test of the admin in a real browser: Debian's `chromium`, driven through
//! `chromedriver` with fantoccini. It logs in, creates a greeting, activates it, sees it
//! on `/`, creates, uses and revokes an API token, changes the password, logs out, and saves screenshots to `test-artifacts/`.
//!
//! There is deliberately no "skip if missing": without Chromium this test fails, naming
//! the packages to install (`apt-get install chromium chromium-driver`).

// The API tests' harness (throwaway PostgreSQL, in-process app), shared as source.
#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../api/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "../api/tls_certs.rs"]
#[allow(dead_code)]
mod tls_certs;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const USERNAME: &str = "admin";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a fresh browser passphrase";
const MESSAGE: &str = "Hello from Chromium";

/// chromedriver in a process group of its own, killed with the Chromium it started when
/// the test ends however it ends (a panicking test never closes its WebDriver session).
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the browser test needs Debian's `{package}` package \
         (apt-get install chromium chromium-driver)"
    );
}

async fn start_driver() -> Driver {
    require(CHROMIUM, "chromium");
    require(CHROMEDRIVER, "chromium-driver");
    // Port 0: the kernel picks a free port, which chromedriver then prints.
    let mut child = Command::new(CHROMEDRIVER)
        .process_group(0)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let logs = helpers::Logs::collect(child.stdout.take().expect("piped stdout"));
    let mut port = None;
    helpers::wait_for(
        "chromedriver to print its port",
        Duration::from_secs(60),
        || {
            port = logs.lines().iter().find_map(|l| {
                l.strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|p| p.trim_end_matches('.').parse::<u16>().ok())
            });
            std::future::ready(port.is_some())
        },
    )
    .await;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{}", port.unwrap()),
    };
    let status = format!("{}/status", driver.url);
    helpers::wait_for(
        "chromedriver to accept connections",
        Duration::from_secs(60),
        || {
            let status = status.clone();
            async move { reqwest::get(&status).await.is_ok() }
        },
    )
    .await;
    driver
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`, type `browser`): what the
/// page logged to its console, and the browser's own errors about it (a failed resource,
/// a CSP violation), since the last call. Enabled by `goog:loggingPrefs` below.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// The console must be empty on every page: no failed request (a missing favicon), no
/// CSP violation, no script error.
async fn assert_console_empty(browser: &Client, page: &str) {
    let entries = browser
        .issue_cmd(BrowserLog)
        .await
        .expect("chromedriver returns the browser log");
    let entries = entries.as_array().expect("the log is a list");
    assert!(
        entries.is_empty(),
        "the console of {page} is not empty: {entries:#?}"
    );
}

async fn start_browser(driver: &Driver, profile: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a Chromium session")
}

/// Wait until the page title is `title` (navigation after a click finishes on its own
/// schedule).
async fn wait_for_title(browser: &Client, title: &str) {
    let started = Instant::now();
    loop {
        let current = browser.title().await.unwrap_or_default();
        if current == title {
            assert_console_empty(browser, title).await;
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "expected the page {title:?}, still on {current:?} at {}",
            browser
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The page's text. During a form submission the old document can vanish before the new
/// one exists, so wait for a body, and read a body that went stale as empty (callers poll).
async fn body_text(browser: &Client) -> String {
    let body = browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("body"))
        .await
        .expect("a page with a body");
    body.text().await.unwrap_or_default()
}

async fn fill(browser: &Client, id: &str, value: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

struct Screenshots {
    dir: PathBuf,
    taken: Vec<PathBuf>,
}

impl Screenshots {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/browser");
        std::fs::create_dir_all(&dir).expect("create test-artifacts/browser");
        Self {
            dir,
            taken: Vec::new(),
        }
    }

    async fn take(&mut self, browser: &Client, name: &str) {
        let png = browser.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        self.taken.push(path);
    }
}

async fn log_in(browser: &Client, app: &helpers::TestApp, password: &str) {
    browser.goto(&app.url("/admin/")).await.unwrap();
    wait_for_title(browser, "Log in | Greeter administration").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/admin/login/");
    assert_eq!(url.query(), Some("next=%2Fadmin%2F"));
    fill(browser, "id_username", USERNAME).await;
    fill(browser, "id_password", password).await;
    click(browser, ".login-box button[type=submit]").await;
    wait_for_title(browser, "Site administration | Greeter administration").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_works_through_the_admin_in_chromium() {
    let app = helpers::spawn_app().await;
    app.create_user(USERNAME, PASSWORD, true, true).await;
    let driver = start_driver().await;
    let profile = std::env::temp_dir().join(format!("greeter-chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&profile).unwrap();
    let browser = start_browser(&driver, &profile).await;
    let mut shots = Screenshots::new();

    // Logged out, the admin sends the browser to the login page.
    browser.goto(&app.url("/admin/")).await.unwrap();
    wait_for_title(&browser, "Log in | Greeter administration").await;
    shots.take(&browser, "01-login").await;
    // The stylesheet loaded despite the strict CSP (it is a file, not inline).
    let header = browser.find(Locator::Css(".site-header")).await.unwrap();
    assert_eq!(
        header.css_value("background-color").await.unwrap(),
        "rgba(47, 93, 138, 1)"
    );

    // A wrong password shows the error next to the form, on the same page.
    fill(&browser, "id_username", USERNAME).await;
    fill(&browser, "id_password", "not the password").await;
    click(&browser, ".login-box button[type=submit]").await;
    wait_for_title(&browser, "Log in | Greeter administration").await;
    let started = Instant::now();
    while !body_text(&browser)
        .await
        .contains("Please enter the correct username")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no login error shown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shots.take(&browser, "02-login-error").await;

    log_in(&browser, &app, PASSWORD).await;
    shots.take(&browser, "03-index").await;

    // Create a greeting.
    click(&browser, "a.addlink[href='/admin/greetings/add/']").await;
    wait_for_title(&browser, "Add greeting | Greeter administration").await;
    fill(&browser, "id_message", MESSAGE).await;
    click(&browser, ".submit-row button[type=submit]").await;
    wait_for_title(
        &browser,
        "Select greeting to change | Greeter administration",
    )
    .await;
    assert!(body_text(&browser).await.contains("was added successfully"));

    // Activate it from the list.
    click(&browser, "form[action$='/activate/'] button").await;
    wait_for_title(
        &browser,
        "Select greeting to change | Greeter administration",
    )
    .await;
    let started = Instant::now();
    while !body_text(&browser).await.contains("is now active") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no activation message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shots.take(&browser, "04-greeting-active").await;

    // The public endpoint serves it (through LISTEN/NOTIFY; how fast is the benchmark's
    // business, not this test's).
    let started = Instant::now();
    loop {
        browser.goto(&app.url("/")).await.unwrap();
        let text = body_text(&browser).await;
        if text.contains(MESSAGE) {
            let json: serde_json::Value = serde_json::from_str(&text).expect("GET / is JSON");
            assert_eq!(json["message"], MESSAGE);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "GET / still says {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shots.take(&browser, "05-root").await;
    assert_console_empty(&browser, "/").await;

    // An API token: create it (shown once), use it, revoke it (refused at once).
    browser.goto(&app.url("/admin/")).await.unwrap();
    wait_for_title(&browser, "Site administration | Greeter administration").await;
    click(&browser, "nav a[href='/admin/tokens/']").await;
    wait_for_title(&browser, "API tokens | Greeter administration").await;
    fill(&browser, "id_name", "browser token").await;
    click(&browser, "#id_scope_write").await;
    click(
        &browser,
        "form[action='/admin/tokens/add/'] button[type=submit]",
    )
    .await;
    let token = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("new-token"))
        .await
        .expect("the new token is shown")
        .text()
        .await
        .unwrap();
    assert!(token.starts_with("grt_") && token.len() == 47, "{token}");
    assert!(body_text(&browser).await.contains("shown only this once"));
    shots.take(&browser, "06-token-created").await;
    let api = |token: String| {
        let client = app.client.clone();
        let url = app.url("/api/v1/greetings");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let started = Instant::now();
    while api(token.clone()).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new token is not accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.goto(&app.url("/admin/tokens/")).await.unwrap();
    wait_for_title(&browser, "API tokens | Greeter administration").await;
    let list = body_text(&browser).await;
    assert!(list.contains("browser token") && !list.contains(&token));
    click(&browser, "form[action$='/revoke/'] button").await;
    let started = Instant::now();
    while !body_text(&browser).await.contains("was revoked") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no revocation message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shots.take(&browser, "07-token-revoked").await;
    let started = Instant::now();
    while api(token.clone()).await != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the revoked token is still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Change the password.
    browser.goto(&app.url("/admin/")).await.unwrap();
    wait_for_title(&browser, "Site administration | Greeter administration").await;
    click(&browser, "a[href='/admin/password_change/']").await;
    wait_for_title(&browser, "Password change | Greeter administration").await;
    fill(&browser, "id_old_password", PASSWORD).await;
    fill(&browser, "id_new_password1", NEW_PASSWORD).await;
    fill(&browser, "id_new_password2", NEW_PASSWORD).await;
    shots.take(&browser, "08-password-change").await;
    click(&browser, ".submit-row button[type=submit]").await;
    wait_for_title(&browser, "Site administration | Greeter administration").await;
    assert!(
        body_text(&browser)
            .await
            .contains("Your password was changed.")
    );

    // Log out (a POST form in the header) and land on the login page.
    click(&browser, "form[action='/admin/logout/'] button").await;
    wait_for_title(&browser, "Log in | Greeter administration").await;
    assert!(
        body_text(&browser)
            .await
            .contains("You have been logged out.")
    );
    shots.take(&browser, "09-logged-out").await;
    browser.goto(&app.url("/admin/greetings/")).await.unwrap();
    wait_for_title(&browser, "Log in | Greeter administration").await;

    // The new password works; and the layout holds on a phone-sized screen.
    log_in(&browser, &app, NEW_PASSWORD).await;
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&app.url("/admin/greetings/")).await.unwrap();
    wait_for_title(
        &browser,
        "Select greeting to change | Greeter administration",
    )
    .await;
    shots.take(&browser, "10-mobile-greetings").await;
    // Whatever the last page logged after its title appeared (its icon, say).
    assert_console_empty(&browser, "the last page").await;

    browser.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    for shot in &shots.taken {
        println!("screenshot: {}", shot.display());
    }
    app.shutdown().await;
}
