import { render } from 'preact';
import { App } from './app';
import { applyTheme, initialTheme } from './lib/theme';
import { getLang } from './lib/i18n';
import './style.css';

applyTheme(initialTheme(), false);
document.documentElement.lang = getLang();
render(<App />, document.getElementById('app')!);
