// A real OpenID Connect provider for the login tests: the certified npm
// package `oidc-provider`, on loopback, with test accounts and group claims.
//
// Usage: node provider.mjs CONFIG.json
//   {"port": 9000, "clients": [{client_id, client_secret, redirect_uris}],
//    "accounts": {"alice": {"password": "...", "groups": ["data-team"]}},
//    "access_token_ttl": 60}
//
// Its own login page (/interaction/<uid>) checks the account's password.
// Consent is implied for the configured clients (first-party apps, as a
// company's hub is). A refresh token is issued with every code grant so the
// hub can keep checking the account.
//
// Disabling an account also ends its sessions at the provider.
//
// Test-only control routes (loopback only, the process exists only in tests):
//   POST /test-control/accounts/<name>/disable   the account stops existing
//   POST /test-control/accounts/<name>/groups    body: JSON list of groups
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const accounts = config.accounts;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    post_logout_redirect_uris: [],
    ...c,
  })),
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account || account.disabled) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, email: `${id}@example.test`, groups: account.groups };
      },
    };
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async loadExistingGrant(ctx) {
    // First-party clients: grant what they ask for without a consent screen.
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    await grant.save();
    return grant;
  },
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  ttl: {
    AccessToken: config.access_token_ttl ?? 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 86400,
    Grant: 86400,
    Interaction: 600,
    Session: 86400,
  },
  cookies: { keys: [config.cookie_key ?? 'test-only-cookie-key'] },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function loginPage(uid, error) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Company sign-in</title></head>
<body><h1>Company sign-in</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit" id="sign-in">Sign in</button></form></body></html>`;
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString();
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function handleInteraction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch');
  if (req.method === 'GET' && !action) return send(res, 200, loginPage(uid));
  if (req.method === 'POST' && action === 'login') {
    const form = new URLSearchParams(await readBody(req));
    const name = form.get('username') ?? '';
    const account = accounts[name];
    if (!account || account.disabled || account.password !== form.get('password')) {
      return send(res, 401, loginPage(uid, 'Unknown user or wrong password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: name } }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, 'method not allowed');
}

async function handleControl(req, res, name, what) {
  const account = accounts[name];
  if (!account || req.method !== 'POST') return send(res, 404, 'no such account', 'text/plain');
  if (what === 'disable') account.disabled = true;
  else if (what === 'groups') account.groups = JSON.parse(await readBody(req));
  else return send(res, 404, 'no such control', 'text/plain');
  return send(res, 200, JSON.stringify(account), 'application/json');
}

// Disabling an account ends its sessions at the provider, as Keycloak or Entra
// do, so the next authorization request shows the login page again.
async function endSessionIfDisabled(req) {
  const id = /(?:^|;\s*)_session=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  const session = id && (await provider.Session.find(id));
  if (session?.accountId && accounts[session.accountId]?.disabled) await session.destroy();
}

const oidc = provider.callback();
const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  try {
    let m = path.match(/^\/interaction\/([\w-]+)(?:\/(\w+))?$/);
    if (m) return await handleInteraction(req, res, m[1], m[2]);
    m = path.match(/^\/test-control\/accounts\/([\w.-]+)\/(\w+)$/);
    if (m) return await handleControl(req, res, m[1], m[2]);
    if (path === '/auth') await endSessionIfDisabled(req);
    return oidc(req, res);
  } catch (err) {
    return send(res, 400, `error: ${escape(err.message)}`);
  }
});
server.listen(config.port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
