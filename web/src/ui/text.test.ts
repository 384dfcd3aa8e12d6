import { describe, expect, it } from 'vitest';
import { dayKey, initials, splitLinks } from './text';

describe('splitLinks', () => {
  it('splits http(s) URLs out of text', () => {
    expect(splitLinks('see https://example.com/a?b=1 now')).toEqual([
      { text: 'see ' },
      { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { text: ' now' },
    ]);
  });

  it('leaves trailing punctuation out of the link', () => {
    expect(splitLinks('go to http://x.org.')).toEqual([{ text: 'go to ' }, { text: 'http://x.org', href: 'http://x.org' }, { text: '.' }]);
    expect(splitLinks('(http://x.org/a_(b))')).toEqual([
      { text: '(' },
      { text: 'http://x.org/a_(b)', href: 'http://x.org/a_(b)' },
      { text: ')' },
    ]);
  });

  it('never links other schemes', () => {
    expect(splitLinks('javascript:alert(1) data:text/html,x ftp://a')).toEqual([{ text: 'javascript:alert(1) data:text/html,x ftp://a' }]);
    expect(splitLinks('<script>alert(1)</script>')).toEqual([{ text: '<script>alert(1)</script>' }]);
  });

  it('handles several links and none', () => {
    expect(splitLinks('a https://a.b b https://c.d')).toHaveLength(4);
    expect(splitLinks('')).toEqual([]);
    expect(splitLinks('plain')).toEqual([{ text: 'plain' }]);
  });
});

describe('dates and names', () => {
  it('groups by local day', () => {
    expect(dayKey('2026-03-01T10:00:00')).toBe(dayKey('2026-03-01T23:00:00'));
    expect(dayKey('2026-03-01T10:00:00')).not.toBe(dayKey('2026-03-02T10:00:00'));
  });
  it('initials', () => {
    expect(initials('Ada Lovelace')).toBe('AL');
    expect(initials('bob')).toBe('B');
    expect(initials('  ')).toBe('?');
  });
});
