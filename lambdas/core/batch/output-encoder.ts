/** Prediction rows as text: JSON Lines (the default) or CSV, built as strings without per-row objects. */
import type { FeatureRow } from '../features.ts';
import type { ServedModel } from '../model-loader.ts';
import type { Prediction } from '../predictions.ts';
import type { OutputFormat } from './contracts.ts';

export interface EncodableRow {
  readonly id: string;
  readonly features: FeatureRow;
  readonly record: { readonly row: number; readonly passThrough: readonly unknown[] };
}

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text =
    typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export class OutputEncoder {
  readonly contentType: string;
  private readonly classKeys: string[] | undefined;
  private readonly csvHeader: string;

  constructor(
    private readonly format: OutputFormat,
    model: ServedModel,
    private readonly passThroughColumns: readonly string[],
  ) {
    this.contentType = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
    this.classKeys = model.classes?.map(String);
    const predictionColumns =
      model.manifest.task === 'regression'
        ? ['value']
        : ['label', ...(this.classKeys ?? []).map((c) => `probability_${c}`)];
    this.csvHeader =
      ['id', 'row', ...predictionColumns, ...passThroughColumns].map(csvField).join(',') + '\n';
  }

  encode(rows: readonly EncodableRow[], predictions: readonly Prediction[], includeHeader: boolean): string {
    return this.format === 'csv' ? this.csv(rows, predictions, includeHeader) : this.jsonl(rows, predictions);
  }

  private jsonl(rows: readonly EncodableRow[], predictions: readonly Prediction[]): string {
    let out = '';
    const pass = this.passThroughColumns;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      out += `{"id":${JSON.stringify(row.id)},"row":${row.record.row},"prediction":${JSON.stringify(predictions[i])}`;
      if (pass.length > 0) {
        out += ',"input":{';
        for (let c = 0; c < pass.length; c++) {
          out += `${c > 0 ? ',' : ''}${JSON.stringify(pass[c])}:${JSON.stringify(row.record.passThrough[c] ?? null)}`;
        }
        out += '}';
      }
      out += '}\n';
    }
    return out;
  }

  private csv(
    rows: readonly EncodableRow[],
    predictions: readonly Prediction[],
    includeHeader: boolean,
  ): string {
    let out = includeHeader ? this.csvHeader : '';
    const keys = this.classKeys;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const prediction = predictions[i]!;
      out += `${csvField(row.id)},${row.record.row}`;
      if ('label' in prediction) {
        out += `,${csvField(prediction.label)}`;
        if (keys) for (const key of keys) out += `,${prediction.probabilities?.[key] ?? ''}`;
      } else {
        out += `,${'value' in prediction ? prediction.value : csvField(prediction.values)}`;
      }
      for (const value of row.record.passThrough) out += `,${csvField(value)}`;
      out += '\n';
    }
    return out;
  }
}
