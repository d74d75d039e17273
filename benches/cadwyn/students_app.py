"""The students service of `examples/students-service`, written with Cadwyn 8.2.

One endpoint, `POST /students`, written against the head version (Student@5:
`firstName`, `lastName`, `yearOfBirth`); releases 3 and 4 are generated from the
declared `VersionChange`s below, the way Cadwyn intends:

* release 4 -> 5: `age` became `yearOfBirth` (rename), converted with a fixed
  reference year (`yearOfBirth = REFERENCE_YEAR - age` and back);
* release 3 -> 4: `fistAndLastName` became `firstName` + `lastName` (split on the
  first space going up, joined with a space going down).

The version is chosen by the `X-API-VERSION` header (`3`, `4` or `5`). The answer
is the student with an `id` the server makes (`student-N`), status 201, like
students-service.

Run (what `service_load` does):

    STUDENTS_REFERENCE_YEAR=2026 python -m uvicorn students_app:app \
        --app-dir benches/cadwyn --host 127.0.0.1 --port 0 --workers 1 \
        --log-level warning --no-access-log
"""

import datetime
import itertools
import os

from pydantic import BaseModel

from cadwyn import (
    Cadwyn,
    RequestInfo,
    ResponseInfo,
    Version,
    VersionBundle,
    VersionChange,
    VersionedAPIRouter,
    convert_request_to_next_version_for,
    convert_response_to_previous_version_for,
    schema,
)

#: The year `age` counts from (fixed at start-up, like students-service's reference date).
REFERENCE_YEAR = int(os.environ.get("STUDENTS_REFERENCE_YEAR") or datetime.date.today().year)


class StudentCreate(BaseModel):
    """Student@5: what the handler takes."""

    firstName: str
    lastName: str
    yearOfBirth: int


class StudentCreated(BaseModel):
    """What a create answers: the student and its id."""

    id: str
    firstName: str
    lastName: str
    yearOfBirth: int


class AgeBecameYearOfBirth(VersionChange):
    description = "`age` became `yearOfBirth`, counted from the reference year."
    instructions_to_migrate_to_previous_version = (
        schema(StudentCreate).field("yearOfBirth").had(name="age"),
        schema(StudentCreated).field("yearOfBirth").had(name="age"),
    )

    @convert_request_to_next_version_for(StudentCreate)
    def age_to_year_of_birth(request: RequestInfo):
        request.body["yearOfBirth"] = REFERENCE_YEAR - request.body.pop("age")

    @convert_response_to_previous_version_for(StudentCreated)
    def year_of_birth_to_age(response: ResponseInfo):
        response.body["age"] = REFERENCE_YEAR - response.body.pop("yearOfBirth")


class NameWasSplit(VersionChange):
    description = "`fistAndLastName` became `firstName` and `lastName`."
    instructions_to_migrate_to_previous_version = (
        schema(StudentCreate).field("firstName").didnt_exist,
        schema(StudentCreate).field("lastName").didnt_exist,
        schema(StudentCreate).field("fistAndLastName").existed_as(type=str),
        schema(StudentCreated).field("firstName").didnt_exist,
        schema(StudentCreated).field("lastName").didnt_exist,
        schema(StudentCreated).field("fistAndLastName").existed_as(type=str),
    )

    @convert_request_to_next_version_for(StudentCreate)
    def split_name(request: RequestInfo):
        first, _, last = request.body.pop("fistAndLastName").partition(" ")
        request.body["firstName"] = first
        request.body["lastName"] = last

    @convert_response_to_previous_version_for(StudentCreated)
    def join_name(response: ResponseInfo):
        first = response.body.pop("firstName")
        last = response.body.pop("lastName")
        response.body["fistAndLastName"] = f"{first} {last}"


versions = VersionBundle(
    Version("5", AgeBecameYearOfBirth),
    Version("4", NameWasSplit),
    Version("3"),
)

router = VersionedAPIRouter()
_ids = itertools.count(1)


@router.post("/students", response_model=StudentCreated, status_code=201)
async def create_student(student: StudentCreate) -> StudentCreated:
    return StudentCreated(id=f"student-{next(_ids)}", **student.model_dump())


app = Cadwyn(versions=versions, api_version_format="string", title="students (Cadwyn)")
app.generate_and_include_versioned_routers(router)
