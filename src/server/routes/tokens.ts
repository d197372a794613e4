/**
 * /v1/tokens: API tokens, admin only. Only a SHA-256 of each secret is stored (catalog/tokens.ts);
 * the secret is in the answer that creates it and nowhere else, never in a log.
 */
import { NotFoundError } from '../../core/errors.js';
import { tokenId, type RouteKit } from './kit.js';

export function tokenRoutes({ on, tokens, accessChanged }: RouteKit): void {
  on('listTokens', (c) => c.json({ tokens: tokens.list() }));
  on('createToken', (c, { body: req }) => {
    const { token: secret, ...info } = tokens.create(req.role, req.name ?? '', { sources: req.sources ?? null, repositories: req.repositories ?? null });
    return c.json({ token: info, secret }, 201);
  });
  on('revokeToken', (c) => {
    const id = tokenId(c.req.param('id') ?? '');
    // Revoking the token of this very request is allowed (rotating one's own token is ordinary;
    // `cairn token create` on the server's data folder always makes a new admin token): the
    // answer says so, and the next request with it gets 401.
    const self = c.get('token').id === id;
    if (!tokens.revoke(id)) throw new NotFoundError(`No token ${id}: list them with GET /v1/tokens (or cairn token list).`);
    accessChanged();
    return c.json({ revoked: id, self, note: self ? 'this was the token of this request: it no longer works' : 'requests with it now answer 401' });
  });
}
