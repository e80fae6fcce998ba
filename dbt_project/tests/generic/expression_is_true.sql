{#- Every row of the model satisfies a SQL boolean expression. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
