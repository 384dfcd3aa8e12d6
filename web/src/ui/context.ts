import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { AppState, Chat } from '../chat';
import { useStore } from '../store';

export const ChatContext = createContext<Chat | null>(null);

export function useChat(): Chat {
  const c = useContext(ChatContext);
  if (!c) throw new Error('ChatContext missing');
  return c;
}

/** A slice of the app state; the component re-renders when it changes. */
export function useApp<T>(select: (s: AppState) => T): T {
  return useStore(useChat().store, select);
}
