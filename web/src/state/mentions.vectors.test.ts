// The mention rules as shared test vectors (events/tests/vectors/mentions.json): the server
// checks the same file (events/tests/mention_vectors.rs), so the client cannot read a body
// differently, down to which characters Unicode calls letters or digits.
import { describe, expect, it } from 'vitest';
import vectors from '../../../events/tests/vectors/mentions.json';
import { parseMentions } from './mentions';

describe('the shared mention vectors', () => {
  it('has cases', () => {
    expect(vectors.cases.length).toBeGreaterThanOrEqual(20);
  });

  it.each(vectors.cases)('reads $body as the server does', ({ body, usernames, room }) => {
    expect(parseMentions(body)).toEqual({ usernames, room });
  });
});
