// Fixtures shared by the unit tests (never imported by the client itself).

import type { MyRoom } from './types';
import type { RowActions } from './ui/MessageRow';

/** A joined group room as `GET /v1/rooms` lists it, with `over` applied. */
export function myRoom(id: string, over: Partial<MyRoom> = {}): MyRoom {
  return {
    room_id: id,
    kind: 'group',
    name: id,
    topic: '',
    visibility: 'public',
    owner_id: 'owner',
    member_count: 2,
    created_at: '2026-01-01T00:00:00Z',
    joined: true,
    role: 'member',
    read_seq: 0,
    unread_count: 0,
    last_seq: 0,
    last_message: null,
    other_user: null,
    version: 2,
    position: 10,
    ...over,
  };
}

/** Row actions that do nothing. */
export const noActions: RowActions = {
  edit: async () => undefined,
  startEdit: () => undefined,
  remove: () => undefined,
  react: () => undefined,
  reply: () => undefined,
  retry: () => undefined,
  discard: () => undefined,
  jumpTo: () => undefined,
  requestQuote: () => undefined,
};
