/** Letters that carry no accent to strip: NFKD leaves them whole, so they are spelled out here. */
const SPELLED_OUT: Record<string, string> = {
  ø: 'o', Ø: 'O', æ: 'ae', Æ: 'AE', œ: 'oe', Œ: 'OE', ß: 'ss', ẞ: 'SS', ł: 'l', Ł: 'L', đ: 'd', Đ: 'D',
  ð: 'd', Ð: 'D', þ: 'th', Þ: 'Th', ı: 'i', ħ: 'h', Ħ: 'H', ŋ: 'ng', Ŋ: 'NG', ŧ: 't', Ŧ: 'T', ĸ: 'k', ſ: 's',
};
const SPELLED_OUT_RE = new RegExp(`[${Object.keys(SPELLED_OUT).join('')}]`, 'g');

/** Latin letters without their accents (`Søren Müller` → `Soren Muller`), the way Entra admins write UPNs. */
export function transliterate(text: string): string {
  return text
    .replace(SPELLED_OUT_RE, (letter) => SPELLED_OUT[letter]!)
    .normalize('NFKD')
    .replace(/\p{M}/gu, '');
}

/** Lower-case letters and digits only, for UPN local parts and domain labels (`Zoë O'Brien` → `zoeobrien`). */
export function asciiSlug(text: string): string {
  return transliterate(text).replace(/[^A-Za-z0-9]/g, '').toLowerCase();
}
