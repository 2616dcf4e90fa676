import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { CsvParser, CsvSyntaxError, parseCsv } from '../../lambdas/core/codecs/csv.ts';

function fieldsOf(text: string, delimiter = ',') {
  return parseCsv(text, delimiter).map((r) => r.fields);
}

function serialize(records: string[][], eol: string): string {
  return records
    .map((r) => r.map((f) => (/[",\r\n]/.test(f) || f === '' ? `"${f.replace(/"/g, '""')}"` : f)).join(','))
    .join(eol);
}

describe('CsvParser', () => {
  it('parses quoted fields, doubled quotes, embedded newlines, CRLF and a BOM', () => {
    const text = '\uFEFFid,note,n\r\n1,"a, ""quoted""\nline",2\r\n2,,3\r\n';
    expect(fieldsOf(text)).toEqual([
      ['id', 'note', 'n'],
      ['1', 'a, "quoted"\nline', '2'],
      ['2', '', '3'],
    ]);
  });

  it('reports the line each record starts on, counting newlines inside quotes', () => {
    const records = parseCsv('h\n"a\nb"\nc\n');
    expect(records.map((r) => r.line)).toEqual([1, 2, 4]);
  });

  it('handles a last record without a line end, empty trailing fields and blank lines', () => {
    expect(fieldsOf('a,b\n\nc,\n"d",')).toEqual([
      ['a', 'b'],
      ['c', ''],
      ['d', ''],
    ]);
  });

  it('supports other delimiters', () => {
    expect(fieldsOf('a;b\n"x;y";z', ';')).toEqual([
      ['a', 'b'],
      ['x;y', 'z'],
    ]);
  });

  it('rejects an unterminated quote and text after a closing quote, with the line', () => {
    expect(() => parseCsv('a\n"open')).toThrow(CsvSyntaxError);
    expect(() => parseCsv('a\n"x"y,1')).toThrow(/unexpected character after a closing quote/);
  });

  it('yields the same records however the text is split into chunks', () => {
    const field = fc.string({
      unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r', ' ', 'é'),
      maxLength: 6,
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(field, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        fc.constantFrom('\n', '\r\n'),
        fc.array(fc.nat(), { maxLength: 10 }),
        (records, eol, cuts) => {
          // A record of one empty field is a blank line, which is not a record.
          const expected = records.filter((r) => !(r.length === 1 && r[0] === ''));
          const text = serialize(records, eol) + eol;
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const parser = new CsvParser();
          const out: string[][] = [];
          let last = 0;
          for (const p of [...points, text.length]) {
            out.push(...parser.push(text.slice(last, p)).map((r) => r.fields));
            last = p;
          }
          out.push(...parser.end().map((r) => r.fields));
          expect(out).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });
});
