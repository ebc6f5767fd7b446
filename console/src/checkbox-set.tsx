/**
 * A fieldset of checkboxes, one per option, for a list of chosen values: checking one adds it at the
 * end, unchecking removes it.
 */
export function CheckboxSet<T extends string>(props: {
  legend: string;
  options: readonly (readonly [T, string])[];
  value: readonly T[];
  onChange: (value: T[]) => void;
}) {
  const { value, onChange } = props;
  return (
    <fieldset>
      <legend>{props.legend}</legend>
      {props.options.map(([option, label]) => (
        <label key={option} class="check">
          <input
            type="checkbox"
            checked={value.includes(option)}
            onChange={(e) => onChange(e.currentTarget.checked ? [...value, option] : value.filter((v) => v !== option))}
          />
          {label}
        </label>
      ))}
    </fieldset>
  );
}
