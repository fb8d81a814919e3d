import { useState } from 'preact/hooks';
import { getToken, setToken } from '../lib/auth';
import { t } from '../lib/i18n';

/** Login asks for the read token after the API answered 401; the token is kept in sessionStorage. */
export function Login() {
  const [value, setValue] = useState('');
  const hadToken = !!getToken();
  return (
    <form
      class="login card"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim());
      }}
    >
      <h1>{t('login.title')}</h1>
      <p class="muted">{t('login.help')}</p>
      {hadToken && <p class="error">{t('login.invalid')}</p>}
      <label>
        {t('login.token')}
        <input
          type="password"
          name="token"
          autoComplete="current-password"
          autoFocus
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
      </label>
      <button type="submit" class="primary" disabled={!value.trim()}>
        {t('login.submit')}
      </button>
    </form>
  );
}
