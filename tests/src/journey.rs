//! A user's way through the api-worker's HTTP API, for the suites that run
//! the api-worker as a process under some AWS identity: sign-up and login,
//! browsing, a watchlist entry. Each step fails with what the API answered.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    /// The bearer token of the login.
    pub token: String,
    /// `id` of `GET /api/v1/me`.
    pub id: String,
}

/// Signs `email` up (202), logs in, and reads who that is.
pub async fn sign_up(http: &reqwest::Client, url: &str, email: &str) -> Result<User> {
    let credentials = json!({"email": email, "password": "correct horse battery"});
    let signup = http
        .post(format!("{url}/api/v1/auth/signup"))
        .json(&credentials)
        .send()
        .await?;
    expect_status(signup, 202, "sign-up").await?;
    let login: Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&credentials)
        .send()
        .await?
        .error_for_status()
        .context("login")?
        .json()
        .await?;
    let token = login["token"].as_str().context("no token")?.to_owned();
    let me = get_json(http, url, "/api/v1/me", &token).await?;
    let id = me["id"].as_str().context("no user id")?.to_owned();
    Ok(User { token, id })
}

/// Each of `paths` answers 2xx without signing in.
pub async fn browse(http: &reqwest::Client, url: &str, paths: &[&str]) -> Result<()> {
    for path in paths {
        http.get(format!("{url}{path}"))
            .send()
            .await?
            .error_for_status()
            .with_context(|| (*path).to_owned())?;
    }
    Ok(())
}

/// Puts `movie` on the user's watchlist (201), then finds it listed.
pub async fn watch(http: &reqwest::Client, url: &str, user: &User, movie: u64) -> Result<()> {
    let added = http
        .put(format!("{url}/api/v1/me/watchlist/{movie}"))
        .bearer_auth(&user.token)
        .send()
        .await?;
    expect_status(added, 201, "watchlist add").await?;
    let listed = get_json(http, url, "/api/v1/me/watchlist", &user.token).await?;
    ensure!(
        listed.to_string().contains(&movie.to_string()),
        "the watchlist lacks {movie}: {listed}"
    );
    Ok(())
}

/// Fails with the status and body unless `response` answered `status`.
async fn expect_status(response: reqwest::Response, status: u16, what: &str) -> Result<()> {
    let got = response.status();
    ensure!(got == status, "{what}: {got} {}", response.text().await?);
    Ok(())
}

/// `GET url + path` as the holder of `token`, a 2xx JSON answer.
async fn get_json(http: &reqwest::Client, url: &str, path: &str, token: &str) -> Result<Value> {
    Ok(http
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("GET {path}"))?
        .json()
        .await?)
}

/// The api-worker's settings as the operator generated them for the
/// MovieApp `app` in `namespace`: its ConfigMap's data, the TMDB key and the
/// token signing key; for running `api-worker` as a process beside it.
pub async fn worker_settings(
    client: &kube::Client,
    namespace: &str,
    app: &str,
) -> Result<Vec<(String, String)>> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::Api;

    let config = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(&movieapp_operator::naming::config_map_name(app))
        .await
        .context("reading the generated ConfigMap")?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let value = |secret: Secret, key: &str| -> Result<String> {
        let bytes = secret
            .data
            .and_then(|mut d| d.remove(key))
            .with_context(|| format!("no {key} in the Secret"))?;
        String::from_utf8(bytes.0).with_context(|| format!("{key} is not text"))
    };
    let mut env: Vec<(String, String)> = config.data.unwrap_or_default().into_iter().collect();
    env.push((
        "TMDB_API_KEY".into(),
        value(secrets.get("tmdb").await?, "api-key")?,
    ));
    env.push((
        "MOVIEAPP_TOKEN_SIGNING_KEY".into(),
        value(
            secrets.get(&format!("{app}-auth")).await?,
            "token-signing-key",
        )?,
    ));
    Ok(env)
}
