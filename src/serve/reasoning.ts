// Splitting a reasoning model's output into its thinking and its answer, as the DeepSeek API and vLLM's
// reasoning parsers return them (`reasoning_content` beside `content`). R1's format encloses the thinking in
// <think> </think> (R1 paper, Table 1; SPEC.md 2). The thinking opens either in the completion (R1-Zero's
// template ends "Assistant:" and the model writes "<think>") or already in the prompt (R1's and Qwen3's chat
// templates end the generation prompt with "<think>\n"), in which case the completion holds only "</think>".
// A completion whose thinking never closes is all thinking (vLLM's DeepSeek-R1 parser does the same); one that
// does not open with <think> is all answer.
//
// Streaming: text arrives in pieces that may cut a tag in two, so a piece that could still be the start of a
// tag is held back until the next one decides it.

export const THINK_OPEN = '<think>';
export const THINK_CLOSE = '</think>';

export interface ReasoningSplit {
  reasoning: string;
  content: string;
}

/**
 * True when the prompt ends inside an open <think>: the generation prompt opened it (R1's "<think>\n"). A <think>
 * earlier in the prompt (a user's message) does not count; Qwen3's "<think>\n\n</think>\n\n" (thinking off)
 * closes it.
 */
export function promptOpensThinking(prompt: string): boolean {
  return /<think>\s*$/.test(prompt);
}

export class ReasoningParser {
  private state: 'start' | 'reasoning' | 'content';
  private held = '';
  /** Whether the completion had any thinking (an opening tag, or a prompt that opened it). */
  sawReasoning: boolean;

  constructor(startsInReasoning: boolean) {
    this.state = startsInReasoning ? 'reasoning' : 'start';
    this.sawReasoning = startsInReasoning;
  }

  /** The next piece of the completion, split; text that may be part of a tag is held back. */
  push(text: string): ReasoningSplit {
    this.held += text;
    const out: ReasoningSplit = { reasoning: '', content: '' };
    if (this.state === 'start') {
      const body = this.held.trimStart();
      if (body.startsWith(THINK_OPEN)) {
        this.state = 'reasoning';
        this.sawReasoning = true;
        this.held = body.slice(THINK_OPEN.length);
      } else if (THINK_OPEN.startsWith(body)) {
        return out;
      } else {
        this.state = 'content';
      }
    }
    if (this.state === 'reasoning') {
      const close = this.held.indexOf(THINK_CLOSE);
      if (close < 0) {
        const keep = partialSuffix(this.held, THINK_CLOSE);
        out.reasoning = this.held.slice(0, this.held.length - keep);
        this.held = this.held.slice(this.held.length - keep);
        return out;
      }
      out.reasoning = this.held.slice(0, close);
      this.held = this.held.slice(close + THINK_CLOSE.length);
      this.state = 'content';
    }
    out.content = this.held;
    this.held = '';
    return out;
  }

  /** The end of the completion: what was held back is no tag after all. */
  end(): ReasoningSplit {
    const held = this.held;
    this.held = '';
    return this.state === 'reasoning' ? { reasoning: held, content: '' } : { reasoning: '', content: held };
  }
}

/** Splits a whole completion. */
export function splitReasoning(completion: string, startsInReasoning: boolean): ReasoningSplit & { sawReasoning: boolean } {
  const parser = new ReasoningParser(startsInReasoning);
  const a = parser.push(completion);
  const b = parser.end();
  return { reasoning: a.reasoning + b.reasoning, content: a.content + b.content, sawReasoning: parser.sawReasoning };
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag`. */
function partialSuffix(text: string, tag: string): number {
  for (let n = Math.min(text.length, tag.length - 1); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}
