// What the current token may do, as GET /api/v1/whoami said.

export const session = {
  scope: null, // "admin", "read", or null while unknown (no token, or refused)
  auth: true, // false: the server runs without authentication
};

/** Actions (retry, cancel, ...) are offered only to an admin token. */
export const canWrite = () => session.scope === "admin";
