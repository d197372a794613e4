/**
 * Text that PostgreSQL tools print in a database's own encoding (pg_restore -l / -f - of an
 * archive pg_dump wrote from a WIN1252, LATIN1, EUC_JP … database), read as the characters it
 * holds. cairn's sessions speak UTF-8 (node-postgres sends nothing else), and the server
 * converts to the database's encoding: SQL read this way runs as pg_restore would run it.
 *
 * SQL_ASCII has no characters, only bytes: its bytes above 0x7F, and text in an encoding Node
 * cannot decode exactly (LATIN5, LATIN10, EUC_TW, EUC_JIS_2004, MULE_INTERNAL), cannot be sent
 * back byte for byte through a UTF-8 session. `exact` says whether they were.
 */

/** PostgreSQL server encodings → WHATWG decoder labels whose mapping is PostgreSQL's (src/backend/utils/mb/conversion_procs). */
const DECODERS: Record<string, string> = {
  UTF8: 'utf-8',
  LATIN2: 'iso-8859-2',
  LATIN3: 'iso-8859-3',
  LATIN4: 'iso-8859-4',
  LATIN6: 'iso-8859-10',
  LATIN7: 'iso-8859-13',
  LATIN8: 'iso-8859-14',
  LATIN9: 'iso-8859-15',
  ISO_8859_5: 'iso-8859-5',
  ISO_8859_6: 'iso-8859-6',
  ISO_8859_7: 'iso-8859-7',
  ISO_8859_8: 'iso-8859-8',
  WIN866: 'ibm866',
  WIN874: 'windows-874',
  WIN1250: 'windows-1250',
  WIN1251: 'windows-1251',
  WIN1253: 'windows-1253',
  WIN1254: 'windows-1254',
  WIN1255: 'windows-1255',
  WIN1256: 'windows-1256',
  WIN1257: 'windows-1257',
  WIN1258: 'windows-1258',
  KOI8R: 'koi8-r',
  KOI8U: 'koi8-u',
  EUC_JP: 'euc-jp',
  EUC_KR: 'euc-kr',
  EUC_CN: 'gbk',
};

/**
 * `bytes` (in PostgreSQL encoding `encoding`; undefined: UTF-8) as text. `exact`: false when
 * bytes above 0x7F could not be read as characters of that encoding (SQL_ASCII, an encoding
 * without a decoder here, or invalid bytes); they are then read as Latin-1, one character per
 * byte, which keeps names distinct but is not what the database holds.
 */
export function decodeDatabaseText(bytes: Buffer, encoding: string | undefined): { text: string; exact: boolean } {
  const name = (encoding ?? 'UTF8').toUpperCase();
  if (!bytes.some((b) => b > 0x7f)) return { text: bytes.toString('latin1'), exact: true };
  if (name === 'LATIN1') return { text: bytes.toString('latin1'), exact: true };
  if (name === 'WIN1252') return decodeWin1252(bytes);
  // EUC_JP's JIS X 0212 (after a 0x8F byte): the WHATWG table differs from PostgreSQL's in places.
  if (name === 'EUC_JP' && bytes.includes(0x8f)) return { text: bytes.toString('latin1'), exact: false };
  const label = DECODERS[name];
  if (label !== undefined) {
    try {
      const text = new TextDecoder(label, { fatal: true }).decode(bytes);
      // The WHATWG windows-125x / windows-874 tables read their undefined bytes (WIN1253's 0x81,
      // …) as C1 controls, which PostgreSQL's own tables do not map back.
      const c1 = label.startsWith('windows-') && /[\u0080-\u009f]/.test(text);
      return { text, exact: !c1 };
    } catch {
      // Invalid in its own encoding (SQL_ASCII-like bytes stored before a conversion check).
    }
  }
  if (name === 'UTF8') return { text: bytes.toString('utf8'), exact: false };
  return { text: bytes.toString('latin1'), exact: false };
}

/**
 * WIN1252's 0x80–0x9F (PostgreSQL's utf8_and_win: 0x81, 0x8D, 0x8F, 0x90, 0x9D have no
 * character); the rest is Latin-1. Not TextDecoder: Node's 'windows-1252' decodes as Latin-1
 * (€, 0x80, came back as U+0080).
 */
const WIN1252_HIGH = [
  0x20ac, -1, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, -1, 0x017d, -1,
  -1, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, -1, 0x017e, 0x0178,
];

function decodeWin1252(bytes: Buffer): { text: string; exact: boolean } {
  let exact = true;
  let text = '';
  for (const b of bytes) {
    if (b < 0x80 || b > 0x9f) text += String.fromCharCode(b);
    else {
      const cp = WIN1252_HIGH[b - 0x80] as number;
      if (cp < 0) exact = false;
      text += String.fromCharCode(cp < 0 ? b : cp);
    }
  }
  return { text, exact };
}
