// Editing YAML through its concrete syntax tree, so that a change touches the bytes of the changed value and
// nothing else: comments, key order, quoting and indentation survive. The plain engine (image references) and
// `render.set` values share these helpers.
import { ApplicationFailure } from '@temporalio/common';
import { CST, Composer, LineCounter, Parser, parse } from 'yaml';
import type { Document } from 'yaml';

/** A YAML file parsed for editing: its tokens (edited in place) and the documents composed from them. */
export interface EditableYaml {
  /** The file's text as read (a byte-order mark kept). */
  text: string;
  tokens: CST.Token[];
  docs: Document.Parsed[];
  lineCounter: LineCounter;
}

/**
 * Parses a file for editing; `name` is how failures name the file. A file that is not UTF-8 or not valid YAML is
 * a non-retryable `InvalidManifest` naming the file, line and column.
 */
export function parseEditableYaml(name: string, content: Buffer): EditableYaml {
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so the CST writes it back.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(content);
  } catch {
    throw ApplicationFailure.nonRetryable(`${name}: invalid YAML: the file is not UTF-8 text`, 'InvalidManifest', {
      file: name,
    });
  }
  const lineCounter = new LineCounter();
  const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(text));
  const docs = Array.from(new Composer({ keepSourceTokens: true }).compose(tokens));
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      throw ApplicationFailure.nonRetryable(
        `${name}:${line}:${col}: invalid YAML: ${error.message.split('\n')[0]}`,
        'InvalidManifest',
        { file: name, line, column: col },
      );
    }
  }
  return { text, tokens, docs, lineCounter };
}

/** The edited file, or undefined when the edits left its text as it was. */
export function serializeEditedYaml(yaml: EditableYaml): Buffer | undefined {
  const out = yaml.tokens.map((token) => CST.stringify(token)).join('');
  return out === yaml.text ? undefined : Buffer.from(out, 'utf8');
}

/**
 * Sets a scalar's value in the CST, keeping its style. A plain scalar that would read back as something other
 * than the same string (`1.10` is a float, `yes` a boolean in YAML 1.1) is double-quoted instead.
 */
export function setScalarToken(token: CST.Token, value: string, inFlow: boolean, previous?: string): void {
  if (token.type === 'block-scalar') {
    // Keep the block's chomping: a `|` scalar's value ends with the newline it had.
    const trailing = /\s*$/.exec(previous ?? '')?.[0] ?? '';
    CST.setScalarValue(token, value + trailing, { afterKey: true, inFlow });
    return;
  }
  const plainIsSafe = readsBackAsString(value, inFlow);
  const keepsStyle = token.type === 'single-quoted-scalar' || token.type === 'double-quoted-scalar' || plainIsSafe;
  CST.setScalarValue(token, value, {
    afterKey: true,
    inFlow,
    ...(keepsStyle ? {} : { type: 'QUOTE_DOUBLE' as const }),
  });
}

export function readsBackAsString(value: string, inFlow: boolean): boolean {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_./@:+-]*$/.test(value)) return false;
  if (inFlow && /[,[\]{}]/.test(value)) return false;
  try {
    return parse(value) === value && parse(value, { version: '1.1' }) === value;
  } catch {
    return false;
  }
}

export type MapToken = CST.BlockMap | CST.FlowCollection;
export type MapItem = CST.BlockMap['items'][number] | CST.FlowCollection['items'][number];

export function keyOf(item: MapItem): string | undefined {
  return item.key ? CST.resolveAsScalar(item.key)?.value : undefined;
}

export function isFlowScalar(token: CST.Token | undefined): token is CST.FlowScalar {
  return token?.type === 'scalar' || token?.type === 'single-quoted-scalar' || token?.type === 'double-quoted-scalar';
}

/** The tokens that end an item's line: a scalar's `end`, or, for a key without a value, its separator. */
function lineEndOf(item: MapItem): CST.SourceToken[] | undefined {
  if (!item.value) return item.sep;
  if (isFlowScalar(item.value)) return (item.value.end ??= []);
  return undefined;
}

function splitAfterFirstNewline(tokens: CST.SourceToken[]): [CST.SourceToken[], CST.SourceToken[]] {
  const newline = tokens.findIndex((t) => t.type === 'newline');
  return newline < 0 ? [tokens, []] : [tokens.slice(0, newline + 1), tokens.slice(newline + 1)];
}

/**
 * The parser files the comments and indentation that follow a key without a value (`newTag:`) under that key,
 * because a nested value could still follow. Give them to the next item, so removing or editing an item moves
 * exactly its own lines.
 */
export function attachLinesToTheirItems(map: CST.BlockMap): void {
  for (let i = 0; i + 1 < map.items.length; i++) {
    const item = map.items[i]!;
    if (item.value || !item.sep) continue;
    const [line, following] = splitAfterFirstNewline(item.sep);
    item.sep = line;
    map.items[i + 1]!.start = [...following, ...map.items[i + 1]!.start];
  }
}

export function setItemValue(item: MapItem, value: string, inFlow: boolean, indent: number, force = false): boolean {
  if (item.value && (isFlowScalar(item.value) || item.value.type === 'block-scalar')) {
    const current = CST.resolveAsScalar(item.value)?.value;
    if (!force && current?.trim() === value) return false;
    setScalarToken(item.value, value, inFlow, current);
    return true;
  }
  if (item.value) {
    CST.setScalarValue(item.value, value, {
      afterKey: true,
      inFlow,
      ...(readsBackAsString(value, inFlow) ? {} : { type: 'QUOTE_DOUBLE' as const }),
    });
    return true;
  }
  // `newTag:` with no value: the line break and any comment after the colon move behind the new value.
  const sep = item.sep ?? [];
  const indicator = sep.findIndex((t) => t.type === 'map-value-ind');
  const after = sep.slice(indicator + 1);
  const end =
    after[0]?.type === 'space' && (after.length === 1 || after[1]?.type === 'newline') ? after.slice(1) : after;
  item.sep = [...sep.slice(0, indicator + 1), sourceToken('space', ' ', indent)];
  item.value = newScalar(value, indent, inFlow, end);
  return true;
}

export function removeItem(map: MapToken, index: number): void {
  const [removed] = map.items.splice(index, 1);
  if (!removed) return;
  const next = map.items[index];
  if (map.type === 'flow-collection') {
    // The first item carries what precedes the first key (`{`); the new first item takes it over without a comma.
    if (index === 0 && next) {
      const rest = next.start.slice(next.start.findIndex((t) => t.type === 'comma') + 1);
      next.start = [...removed.start, ...(rest[0]?.type === 'space' ? rest.slice(1) : rest)];
    }
    return;
  }
  if (index === 0 && next && next.start.every((t) => t.type === 'space')) {
    // The first item of `- name: x` has no indentation of its own: the `- ` is before it.
    next.start = removed.start;
  }
  if (!next) {
    // The last item may hold what follows the map (the indentation of the next line); keep it in the stream.
    const [, following] = splitAfterFirstNewline(lineEndOf(removed) ?? []);
    const previous = map.items[index - 1];
    if (previous && following.length > 0) lineEndOf(previous)?.push(...following);
  }
}

export function addItem(map: MapToken, key: string, value: string): void {
  const indent = map.indent;
  const inFlow = map.type === 'flow-collection';
  const keyToken = CST.createScalarToken(key, { indent, end: [] });
  const sep = [sourceToken('map-value-ind', ':', indent), sourceToken('space', ' ', indent)];
  if (map.type === 'flow-collection') {
    const start = map.items.length > 0 ? [sourceToken('comma', ',', indent), sourceToken('space', ' ', indent)] : [];
    map.items.push({ start, key: keyToken, sep, value: newScalar(value, indent, inFlow, []) });
    return;
  }
  const last = map.items[map.items.length - 1];
  // A map at the end of a file without a final newline: the new line goes before the new key instead.
  const endsLine = last === undefined || CST.stringify(last).endsWith('\n');
  const start = [
    ...(endsLine ? [] : [sourceToken('newline', '\n', indent)]),
    sourceToken('space', ' '.repeat(indent), 0),
  ];
  const end = endsLine ? [sourceToken('newline', '\n', indent)] : [];
  map.items.push({ start, key: keyToken, sep, value: newScalar(value, indent, inFlow, end) });
}

function newScalar(
  value: string,
  indent: number,
  inFlow: boolean,
  end: CST.SourceToken[],
): CST.FlowScalar | CST.BlockScalar {
  return CST.createScalarToken(value, {
    indent,
    inFlow,
    end,
    type: readsBackAsString(value, inFlow) ? 'PLAIN' : 'QUOTE_DOUBLE',
  });
}

function sourceToken(type: CST.SourceToken['type'], source: string, indent: number): CST.SourceToken {
  // Offsets only matter to the parser; CST.stringify concatenates sources.
  return { type, offset: 0, indent, source };
}
