// `r1 tokenizer train|encode|decode`: train a byte-level BPE tokenizer on a corpus, and look at what a
// tokenizer (ours or a Hugging Face one) does to a text or a list of ids.
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { readCorpus } from '../tokenizer/corpus.ts';
import { CHAT_SPECIAL_TOKENS, REASONING_TAG_TOKENS } from '../tokenizer/chat.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { saveTrainedBpe, trainBpe, type TrainProgress } from '../tokenizer/train.ts';
import { UserError } from '../util/errors.ts';
import { progressBar } from '../util/progress.ts';

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** "1,2, 3" or "1 2 3" -> [1, 2, 3]; anything else names the bad entry. */
export function parseIdList(text: string): number[] {
  const parts = text.split(/[\s,]+/).filter((p) => p.length > 0);
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(Number(p))) throw new UserError(`ids: ${JSON.stringify(p)} is not a token id (expected non-negative integers separated by commas)`);
    return Number(p);
  });
}

/** Writes a line to the command's output (stdout unless configureOutput says otherwise, as in tests). */
function println(command: Command, line: string): void {
  command.configureOutput().writeOut!(`${line}\n`);
}

/** A token's text as JSON, or its bytes in hex when it holds only part of a UTF-8 character ("<e4 bd>"). */
function showTokenText(tok: Tokenizer, id: number): string {
  const bytes = tok.tokenBytes(id);
  try {
    return JSON.stringify(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return `<${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')}>`;
  }
}

export function register(program: Command): void {
  const tokenizer = program
    .command('tokenizer')
    .description('train a byte-level BPE tokenizer, or encode/decode with one (Hugging Face tokenizer.json)');

  tokenizer
    .command('train')
    .summary('learn a byte-level BPE vocabulary from a .txt or .jsonl corpus')
    .description(
      'learn a byte-level BPE vocabulary (Qwen2 pre-tokenizer regex, GPT-2 byte alphabet) and write ' +
        'tokenizer.json + tokenizer_config.json, loadable by Hugging Face tokenizers and transformers.\n' +
        `Always added: special ${CHAT_SPECIAL_TOKENS.join(' ')} and (non-special) ${REASONING_TAG_TOKENS.join(' ')}.`,
    )
    .requiredOption('--corpus <file>', 'training text: .txt (all text) or .jsonl (a "text" string per line)')
    .requiredOption('--vocab-size <n>', 'vocabulary size including the 256 bytes and the added tokens', positiveInteger)
    .requiredOption('--out <dir>', 'folder to write tokenizer.json and tokenizer_config.json into')
    .option('--special <tokens...>', 'more special tokens, after the default ones')
    .option('--min-frequency <n>', 'do not merge pairs seen fewer times than this', positiveInteger, 2)
    .action(async (opts: { corpus: string; vocabSize: number; out: string; special?: string[]; minFrequency: number }, command: Command) => {
      const started = performance.now();
      const texts = readCorpus(opts.corpus);
      const bar = progressBar('{phase} [{bar}] {value}/{total}', true, { clearOnComplete: true });
      let phase: TrainProgress['phase'] | null = null;
      const onProgress = (p: TrainProgress) => {
        if (p.phase !== phase) {
          if (phase !== null) bar?.stop();
          phase = p.phase;
          bar?.start(p.phase === 'count' ? texts.length : p.maxMerges, 0, { phase: p.phase === 'count' ? 'counting words' : 'merging' });
        }
        bar?.update(p.phase === 'count' ? p.texts : p.merges);
      };
      let trained;
      try {
        trained = trainBpe(texts, { vocabSize: opts.vocabSize, specialTokens: opts.special, minFrequency: opts.minFrequency, onProgress });
      } finally {
        bar?.stop();
      }
      await saveTrainedBpe(opts.out, trained);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const shortBy = opts.vocabSize - trained.vocabSize;
      println(
        command,
        `wrote ${join(opts.out, 'tokenizer.json')}: vocab ${trained.vocabSize} (256 bytes, ` +
          `${trained.vocabSize - 256 - trained.addedTokens} learned, ${trained.addedTokens} added) in ${seconds} s` +
          (shortBy > 0 ? `; ${shortBy} short of --vocab-size: the corpus has no more pairs seen >= ${opts.minFrequency} times` : ''),
      );
    });

  tokenizer
    .command('encode')
    .description('print the token ids of a text, comma separated (or one token per line with --tokens)')
    .argument('<text>', 'the text to encode (special tokens such as <|im_start|> are matched whole)')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, or a folder holding it (and tokenizer_config.json)')
    .option('--tokens', 'print "id<TAB>vocabulary string<TAB>text as JSON" for each token')
    .option('--no-add-special-tokens', "leave out what the tokenizer's post-processor adds (e.g. Llama-3's BOS)")
    .action((text: string, opts: { tokenizer: string; tokens?: boolean; addSpecialTokens: boolean }, command: Command) => {
      const tok = Tokenizer.fromFile(opts.tokenizer);
      const ids = tok.encode(text, { addSpecialTokens: opts.addSpecialTokens });
      if (!opts.tokens) {
        println(command, ids.join(','));
        return;
      }
      const pieces = tok.tokenize(text, { addSpecialTokens: opts.addSpecialTokens });
      for (let i = 0; i < ids.length; i++) println(command, `${ids[i]}\t${pieces[i]}\t${showTokenText(tok, ids[i])}`);
    });

  tokenizer
    .command('decode')
    .description('print the text of a list of token ids')
    .argument('<ids>', 'token ids separated by commas (or spaces), e.g. 9707,11,1879')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, or a folder holding it (and tokenizer_config.json)')
    .option('--skip-special-tokens', 'leave out special tokens such as <|im_end|>')
    .action((idsText: string, opts: { tokenizer: string; skipSpecialTokens?: boolean }, command: Command) => {
      const ids = parseIdList(idsText);
      const tok = Tokenizer.fromFile(opts.tokenizer);
      println(command, tok.decode(ids, { skipSpecialTokens: opts.skipSpecialTokens ?? false }));
    });
}
