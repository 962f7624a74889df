/**
 * GitHub's create-a-commit payload (`POST /repos/{owner}/{repo}/git/commits`) and the git
 * commit object GitHub writes for it, which is what a commit signature must cover.
 */

export interface GitIdentity {
  name: string;
  email: string;
  date: Date;
}

export interface CommitPayload {
  message: string;
  tree: string;
  parents: string[];
  author: GitIdentity;
  committer: GitIdentity;
  signature?: string;
}

/** A payload that cannot be signed as it is; `message` says which field is wrong (never a value from a credential). */
export class CommitPayloadError extends Error {
  readonly code = 'COMMIT_PAYLOAD_INVALID';
}

const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/i;

function field(obj: Record<string, unknown>, name: string, where: string): string {
  const v = obj[name];
  if (typeof v !== 'string' || v === '') throw new CommitPayloadError(`${where}${name} must be a non-empty string`);
  return v;
}

function identityPart(value: string, what: string): string {
  // These would end the header line or the <email> part of the object.
  if (/[<>\r\n]/.test(value)) throw new CommitPayloadError(`${what} has a character a git identity cannot hold (<, > or a line break)`);
  return value;
}

/** A date as GitHub documents it (ISO 8601); to the second, as git stores it. */
function dateOf(value: unknown, what: string, now: Date): Date {
  if (value === undefined || value === null || value === '') return new Date(Math.floor(now.getTime() / 1000) * 1000);
  const d = typeof value === 'string' ? new Date(value) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new CommitPayloadError(`${what} must be an ISO 8601 date, got ${JSON.stringify(value)}`);
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/**
 * The payload with the configured committer, as snyk-broker rebuilds it: message, tree,
 * parents, author, committer; other fields are dropped. Unlike snyk-broker it keeps every
 * parent (it signs the first only, so a merge commit's signature never verifies), writes no
 * `parent` line for a root commit (it writes `parent undefined`), takes a missing author date
 * as now (it gives up and sends the commit unsigned), and drops the message's trailing
 * whitespace from the payload as well as from the signed text (it drops it only from the
 * signed text, so such a message never verifies).
 */
export function rebuildCommitPayload(body: string, committer: { name: string; email: string }, now = new Date()): CommitPayload {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new CommitPayloadError('the create-commit body is not JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new CommitPayloadError('the create-commit body is not a JSON object');
  const d = doc as Record<string, unknown>;
  if (typeof d.message !== 'string') throw new CommitPayloadError('message must be a string');
  const tree = field(d, 'tree', '');
  if (!SHA.test(tree)) throw new CommitPayloadError('tree must be a full tree SHA (40 or 64 hex digits)');
  const parents = d.parents ?? [];
  if (!Array.isArray(parents) || !parents.every((p): p is string => typeof p === 'string' && SHA.test(p))) throw new CommitPayloadError('parents must be an array of full commit SHAs');
  const author = d.author;
  if (!author || typeof author !== 'object' || Array.isArray(author)) throw new CommitPayloadError('author must be an object with name and email (GitHub would use the token\'s user, which cannot be signed for ahead)');
  const a = author as Record<string, unknown>;
  const c = (d.committer && typeof d.committer === 'object' ? d.committer : {}) as Record<string, unknown>;
  return {
    message: d.message.trimEnd(),
    // git writes object ids in lower case.
    tree: tree.toLowerCase(),
    parents: parents.map((p) => p.toLowerCase()),
    author: { name: identityPart(field(a, 'name', 'author.'), 'author.name'), email: identityPart(field(a, 'email', 'author.'), 'author.email'), date: dateOf(a.date, 'author.date', now) },
    committer: { name: committer.name, email: committer.email, date: dateOf(c.date, 'committer.date', now) },
  };
}

function identityLine(role: 'author' | 'committer', who: GitIdentity): string {
  // The payload's dates are sent in UTC, so GitHub writes +0000 too.
  return `${role} ${who.name} <${who.email}> ${Math.floor(who.date.getTime() / 1000)} +0000\n`;
}

/** The commit object's text as git writes it (headers, a blank line, the message): what the signature covers. */
export function commitObjectText(c: CommitPayload): string {
  return `tree ${c.tree}\n${c.parents.map((p) => `parent ${p}\n`).join('')}${identityLine('author', c.author)}${identityLine('committer', c.committer)}\n${c.message}`;
}

/** GitHub's date form, to the second. */
function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The body sent to GitHub: the rebuilt payload, its dates in UTC so GitHub writes the object that was signed. */
export function commitPayloadBody(c: CommitPayload): string {
  return JSON.stringify({
    message: c.message,
    tree: c.tree,
    parents: c.parents,
    author: { name: c.author.name, email: c.author.email, date: isoSeconds(c.author.date) },
    committer: { name: c.committer.name, email: c.committer.email, date: isoSeconds(c.committer.date) },
    ...(c.signature ? { signature: c.signature } : {}),
  });
}
