import { render } from 'preact';
import { Chat } from './chat';
import { App } from './ui/App';
import './styles.css';

const chat = new Chat();
const root = document.getElementById('app');
if (root) {
  render(<App chat={chat} />, root);
  chat.attach();
}
