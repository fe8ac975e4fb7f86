// RFC 8693 token exchange for the test IdP.
//
// oidc-provider has no built-in token-exchange grant, but it lets an
// application register extra grant types. This is the fixture's own grant:
// it accepts an access token issued by this IdP as subject_token and issues a
// new JWT access token for another loopback resource (or audience), with an
// `act` claim naming the exchanging client (added by extraTokenClaims in idp.mjs).

import * as jose from 'jose';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'resource',
  'audience',
  'scope',
  'requested_token_type',
];

/**
 * @param {import('oidc-provider').Provider} provider
 * @param {{ issuer: string, publicJwks: object, resourceServerInfo: (resource: string) => object | undefined, exchangeTokenTTL?: number }} options
 *   exchangeTokenTTL: lifetime (seconds) of exchanged tokens; default: the resource's access-token TTL
 */
export function registerTokenExchange(provider, { issuer, publicJwks, resourceServerInfo, exchangeTokenTTL }) {
  const localJwks = jose.createLocalJWKSet(publicJwks);

  async function subjectOf(subjectToken) {
    try {
      const { payload } = await jose.jwtVerify(subjectToken, localJwks, { issuer });
      return payload.sub;
    } catch {
      // Not a JWT of ours: maybe an opaque access token this IdP issued.
      const stored = await provider.AccessToken.find(subjectToken);
      return stored && !stored.isExpired ? stored.accountId : undefined;
    }
  }

  async function handler(ctx) {
    const { params, client } = ctx.oidc;
    const fail = (error, description) => {
      ctx.status = 400;
      ctx.body = { error, error_description: description };
    };

    if (!params.subject_token || !params.subject_token_type) {
      return fail('invalid_request', 'subject_token and subject_token_type are required');
    }
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      return fail('invalid_request', 'unsupported subject_token_type');
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      return fail('invalid_request', 'unsupported requested_token_type');
    }
    const target = params.resource || params.audience;
    const info = target ? resourceServerInfo(target) : undefined;
    if (!info) {
      return fail('invalid_target', 'resource or audience must be a loopback URL');
    }
    const accountId = await subjectOf(params.subject_token);
    if (!accountId) {
      return fail('invalid_grant', 'subject_token is invalid or expired');
    }

    const allowed = info.scope.split(' ');
    const scope = (params.scope || info.scope).split(' ').filter((s) => allowed.includes(s)).join(' ');
    const token = new provider.AccessToken({
      accountId,
      client,
      scope,
      gty: 'token_exchange',
      expiresIn: exchangeTokenTTL ?? info.accessTokenTTL,
    });
    token.resourceServer = new provider.ResourceServer(target, info);

    ctx.body = {
      access_token: await token.save(),
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope,
    };
    return undefined;
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler, PARAMETERS, ['resource', 'audience']);
}
