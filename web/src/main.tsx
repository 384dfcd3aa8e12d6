import { render } from 'preact';
import { Api, takeSsoFragment } from './api';
import { Chat } from './chat';
import { App } from './ui/App';
import './styles.css';

const api = new Api();
// Back from single sign-on: the session is in the URL fragment (taken out of it at once).
takeSsoFragment(api);
const chat = new Chat(api);
const root = document.getElementById('app');
if (root) {
  render(<App chat={chat} />, root);
  chat.attach();
}
