/** The commander options of `init` and `serve`, made from the one table (config/options.ts). */
import { type Command, Option } from 'commander';
import { OPTION_LIST, type OptionSpec, psNote } from '../config/options.ts';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * Adds the options `command` takes, with their help lines. No commander default and
 * no commander env: a flag not given stays undefined, so that the variable (from the
 * injected environment), the settings and the default can answer in their order.
 */
export function addOptions(cmd: Command, command: 'init' | 'serve'): Command {
  const out: Option[] = [];
  for (const o of OPTION_LIST) {
    if (command === 'init' ? !o.init : !o.serve) continue;
    const recorded = command === 'init' && o.init === 'record';
    const help = recorded ? `record: ${o.help}` : `${o.help}${command === 'init' ? shownDefault(o) : ''}`;
    const env = o.env && !recorded ? ` [${o.env}]` : '';
    if (o.flag) {
      const secretNote = psNote(o) ? `; ${psNote(o)}` : '';
      const option = new Option(`${o.flag}${o.arg ? ` <${o.arg.toLowerCase()}>` : ''}`, `${help}${o.repeatable ? ' (repeatable)' : ''}${secretNote}${env}`);
      if (o.choices) option.choices(o.choices);
      if (o.repeatable) option.argParser(collect);
      out.push(option);
    }
    if (o.fileFlag && command === 'init') {
      out.push(new Option(`${o.fileFlag} <path>`, `file holding the ${o.help.replace(/^the /, '')} ("-" for stdin)${o.flag ? '' : env}`));
    }
  }
  for (const option of out) cmd.addOption(option);
  return cmd;
}

function shownDefault(o: OptionSpec): string {
  const d = o.defaultText ?? (typeof o.default === 'function' ? undefined : o.default);
  return d ? ` (default ${Array.isArray(d) ? d.join(', ') : d})` : '';
}
