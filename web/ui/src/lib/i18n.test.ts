import { describe, expect, it } from 'vitest';
import { messageKeys, pickLang } from './i18n';

describe('i18n', () => {
  it('has every key in both languages', () => {
    expect(messageKeys('zh-CN').sort()).toEqual(messageKeys('en').sort());
  });
  it('picks the remembered language, else the browser one', () => {
    expect(pickLang('zh-CN', ['en-US'])).toBe('zh-CN');
    expect(pickLang(null, ['zh-TW', 'en'])).toBe('zh-CN');
    expect(pickLang(null, ['fr-FR', 'en-GB'])).toBe('en');
    expect(pickLang('xx', ['de'])).toBe('en');
  });
});
